import { useEffect, useMemo, useRef, useState } from "react";
import type { MarketHub } from "../hub";
import { useStoreVersion, useTopic } from "../hooks";
import { buildChainIndex } from "../model/chain";
import { formatCount, formatFixed } from "../model/format";
import { formatSeries, parseSeriesKey } from "../model/series";
import { calendarDaysToExpiry } from "../model/surface";
import type { ContractRow } from "../model/types";
import type { Route } from "../route";
import { ChainGrid } from "./ChainGrid";

interface ChainViewProps {
  hub: MarketHub;
  route: Route & { symbol: string };
  navigate: (route: Route, replace?: boolean) => void;
}

export function ChainView({ hub, route, navigate }: ChainViewProps) {
  const symbol = route.symbol;
  const store = useTopic<ContractRow>(hub, `chain:${symbol}`);
  useStoreVersion(store);
  // Chain messages carry the underlying as of their seq: the spot the rows were quoted against.
  const spot = store.underlying?.spot ?? null;

  // The index only changes with the set of contracts, not with their quotes.
  const index = useMemo(() => buildChainIndex(store.rows.values()), [store, store.structure]);
  // route.expiry is a series key: the date, with `-am` for an a.m.-settled series (series.ts).
  const expiry =
    route.expiry && index.lines.has(route.expiry) ? route.expiry : (index.series[0] ?? null);
  const lines = expiry ? (index.lines.get(expiry) ?? []) : [];
  const now = Date.now();
  const [recenter, setRecenter] = useState(0);
  const tabsRef = useRef<HTMLElement>(null);

  // ← and → step through expiries (not while typing in the symbol box).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.altKey || event.ctrlKey || event.metaKey || expiry === null) return;
      if ((event.target as HTMLElement).closest("input, select, textarea")) return;
      const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      const next = index.series[index.series.indexOf(expiry) + step];
      if (step === 0 || next === undefined) return;
      event.preventDefault();
      navigate({ ...route, expiry: next }, true);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [index, expiry, route, navigate]);

  // Keep the selected expiry's tab in view (deep links to far expiries, keyboard stepping).
  useEffect(() => {
    tabsRef.current
      ?.querySelector(".active")
      ?.scrollIntoView({ block: "nearest", inline: "nearest" });
  }, [expiry, store.loaded]);

  if (store.error) {
    return <div className="message error" data-testid="chain-error">{store.error}</div>;
  }
  if (!store.loaded) {
    return <div className="message">Loading {symbol} chain…</div>;
  }
  if (index.series.length === 0) {
    return <div className="message">No contracts listed for {symbol}.</div>;
  }
  let calls = 0;
  let volume = 0;
  for (const line of lines) {
    if (line.call) calls++;
    for (const s of [line.call, line.put]) {
      const row = s ? store.rows.get(s) : undefined;
      volume += row?.volume ?? 0;
    }
  }
  return (
    <section className="chain-view">
      <div className="subbar">
        <div className="quote">
          <span className="quote-symbol">{symbol}</span>
          <span className="quote-spot num" data-testid="chain-spot">
            {formatFixed(spot, 2)}
          </span>
        </div>
        <nav className="expiries" aria-label="Expiries" data-testid="expiry-tabs" ref={tabsRef}>
          {index.series.map((key) => {
            const series = parseSeriesKey(key);
            const days = calendarDaysToExpiry(series?.expiry ?? key, now);
            return (
              <button
                type="button"
                key={key}
                className={key === expiry ? "active" : ""}
                data-expiry={key}
                title={
                  series?.amSettled ? "a.m.-settled: expires at the 09:30 opening" : undefined
                }
                onClick={() => navigate({ ...route, expiry: key }, true)}
              >
                {formatSeries(key)}
                <span className="dte">{days}d</span>
              </button>
            );
          })}
        </nav>
        <button
          type="button"
          className="recenter"
          title="Scroll to the money"
          onClick={() => setRecenter((n) => n + 1)}
        >
          ATM
        </button>
      </div>
      <ChainGrid
        lines={lines}
        store={store}
        spot={spot}
        chainKey={`${symbol}:${expiry}:${recenter}`}
      />
      <footer className="statusbar" data-testid="chain-status">
        <span>
          {expiry ? formatSeries(expiry) : ""} · {lines.length} strikes · {calls} calls ·{" "}
          {formatCount(volume)} contracts traded
        </span>
        <span>
          {store.rows.size.toLocaleString("en-US")} contracts in {index.series.length} expiries
        </span>
        <span className="num" data-testid="chain-seq">
          seq {store.seq.toLocaleString("en-US")}
        </span>
      </footer>
    </section>
  );
}
