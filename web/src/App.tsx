import { Component, type ReactNode, useEffect, useState } from "react";
import { ApiError, fetchUnderlyings } from "./api";
import { ChainView } from "./components/ChainView";
import { SurfaceView } from "./components/SurfaceView";
import { TopBar } from "./components/TopBar";
import type { MarketHub } from "./hub";
import { useConnectionStatus } from "./hooks";
import type { UnderlyingRow } from "./model/types";
import { useRoute } from "./route";

const LIST_REFRESH_MS = 30_000;
const LIST_RETRY_MS = 2_000;
const PREFERRED_START = "SPY";

export function App({ hub, apiKey }: { hub: MarketHub; apiKey: string | null }) {
  const [route, navigate] = useRoute();
  const status = useConnectionStatus(hub);
  const [underlyings, setUnderlyings] = useState<UnderlyingRow[]>([]);
  const [listError, setListError] = useState<string | null>(null);
  const [keyRequired, setKeyRequired] = useState(false);

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout>;
    const load = async () => {
      try {
        const list = await fetchUnderlyings(apiKey);
        if (!live) return;
        setUnderlyings(list);
        setListError(null);
        setKeyRequired(false);
        timer = setTimeout(load, LIST_REFRESH_MS);
      } catch (error) {
        if (!live) return;
        setListError(String((error as Error).message ?? error));
        setKeyRequired(error instanceof ApiError && (error.status === 401 || error.status === 403));
        timer = setTimeout(load, LIST_RETRY_MS);
      }
    };
    void load();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [apiKey]);

  useEffect(() => {
    if (route.symbol !== null || underlyings.length === 0) return;
    const start = underlyings.find((u) => u.symbol === PREFERRED_START) ?? underlyings[0];
    navigate({ ...route, symbol: start.symbol }, true);
  }, [route, underlyings, navigate]);

  useEffect(() => {
    document.title = route.symbol
      ? `${route.symbol} ${route.view === "chain" ? "chain" : "vol surface"} · flashalpha`
      : "flashalpha";
  }, [route]);

  let body: React.ReactNode;
  if (keyRequired) {
    body = (
      <div className="message error" data-testid="key-required">
        {apiKey ? "The API key this browser holds was refused." : "This daemon requires an API key."}{" "}
        Open the UI once as <code>{window.location.origin}/?api_key=KEY</code>; the key is kept in
        this browser.
      </div>
    );
  } else if (route.symbol === null) {
    body = <div className="message">{listError ?? "Loading underlyings…"}</div>;
  } else if (route.view === "surface") {
    body = <SurfaceView key={route.symbol} hub={hub} route={{ ...route, symbol: route.symbol }} navigate={navigate} />;
  } else {
    body = <ChainView key={route.symbol} hub={hub} route={{ ...route, symbol: route.symbol }} navigate={navigate} />;
  }
  // While the hub is down the numbers on screen are old: they are dimmed until it is back.
  return (
    <div className="app" data-stale={status !== "connected"}>
      <TopBar hub={hub} route={route} underlyings={underlyings} navigate={navigate} />
      <main>
        <ErrorBoundary key={`${route.view}:${route.symbol}`}>{body}</ErrorBoundary>
      </main>
    </div>
  );
}

/** A view that throws shows the error instead of a blank screen; other views keep working. */
class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    if (this.state.error) {
      return <div className="message error">This view failed: {this.state.error.message}</div>;
    }
    return this.props.children;
  }
}
