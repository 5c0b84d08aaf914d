import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { apiKey } from "./api";
import { App } from "./App";
import { hubProtocol, MarketHub, wireProtocol } from "./hub";
import "./styles.css";

const key = apiKey();
const protocol = await hubProtocol(wireProtocol(window.location.search, window.sessionStorage));
const hub = new MarketHub("/hubs/market", key, protocol);
hub.start();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App hub={hub} apiKey={key} />
  </StrictMode>,
);
