import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API and the hub to a running daemon (FLASHALPHA_URL, default the
// daemon's default address), so the UI can be developed with hot reload against live data.
const daemon = process.env.FLASHALPHA_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    // plotly's gl3d bundle is one ~1.7 MB chunk, loaded only by the surface view.
    chunkSizeWarningLimit: 2500,
  },
  server: {
    proxy: {
      "/api": daemon,
      "/hubs": { target: daemon, ws: true },
      "/metrics": daemon,
      "/schema": daemon,
    },
  },
});
