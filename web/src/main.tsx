import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { apiKey } from "./api";
import { App } from "./App";
import { MarketHub } from "./hub";
import "./styles.css";

const key = apiKey();
const hub = new MarketHub("/hubs/market", key);
hub.start();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App hub={hub} apiKey={key} />
  </StrictMode>,
);
