/**
 * Deep links: /chain/SPY, /chain/SPY?expiry=2025-12-19, /chain/SPX?expiry=2025-12-19-am (a
 * series key, model/series.ts), /surface/SPY, / (the default chain).
 */

import { useCallback, useEffect, useState } from "react";
import { parseSeriesKey } from "./model/series";

export type View = "chain" | "surface";

export interface Route {
  view: View;
  /** Upper-case underlying, or null for the start page. */
  symbol: string | null;
  /** The series shown (chain) or whose smile is shown (surface): a series key. */
  expiry: string | null;
}

const VIEWS: readonly View[] = ["chain", "surface"];

export function parseRoute(pathname: string, search = ""): Route {
  const parts = pathname.split("/").filter(Boolean);
  const view = VIEWS.includes(parts[0] as View) ? (parts[0] as View) : "chain";
  const symbol = parts.length >= 2 ? decodeURIComponent(parts[1]).toUpperCase() : null;
  const expiry = new URLSearchParams(search).get("expiry")?.toLowerCase();
  return { view, symbol, expiry: expiry && parseSeriesKey(expiry) ? expiry : null };
}

export function routePath(route: Route): string {
  if (route.symbol === null) return `/${route.view}`;
  const path = `/${route.view}/${encodeURIComponent(route.symbol)}`;
  return route.expiry ? `${path}?expiry=${route.expiry}` : path;
}

/** The current route and a navigate(route, replace?) that keeps the address bar in step. */
export function useRoute(): [Route, (route: Route, replace?: boolean) => void] {
  const [route, setRoute] = useState(() =>
    parseRoute(window.location.pathname, window.location.search),
  );
  useEffect(() => {
    const onPop = () => setRoute(parseRoute(window.location.pathname, window.location.search));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback((next: Route, replace = false) => {
    const path = routePath(next);
    if (path !== window.location.pathname + window.location.search) {
      if (replace) window.history.replaceState(null, "", path);
      else window.history.pushState(null, "", path);
    }
    setRoute(next);
  }, []);
  return [route, navigate];
}
