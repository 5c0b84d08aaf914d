import { type FormEvent, useState } from "react";
import type { MarketHub } from "../hub";
import { useNow, useStoreVersion, useTopic } from "../hooks";
import { flashDirection } from "../model/store";
import { formatFixed } from "../model/format";
import type { UnderlyingRow } from "../model/types";
import type { Route, View } from "../route";
import { ConnectionBadge } from "./ConnectionBadge";

/** Underlyings shown with a live spot in the strip (each is one hub subscription). */
const STRIP_LIMIT = 16;
const FLASH_MS = 700;

interface TopBarProps {
  hub: MarketHub;
  route: Route;
  underlyings: UnderlyingRow[];
  navigate: (route: Route) => void;
}

export function TopBar({ hub, route, underlyings, navigate }: TopBarProps) {
  const [query, setQuery] = useState("");
  const strip = underlyings.slice(0, STRIP_LIMIT);
  if (route.symbol && !strip.some((u) => u.symbol === route.symbol)) {
    strip.push({ symbol: route.symbol, spot: null });
  }
  const go = (symbol: string, view: View = route.view) =>
    navigate({ view, symbol, expiry: view === route.view && symbol === route.symbol ? route.expiry : null });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const symbol = query.trim().toUpperCase();
    if (symbol) go(symbol);
    setQuery("");
  };
  return (
    <header className="topbar">
      <div className="brand">
        flash<span>alpha</span>
      </div>
      <form className="picker" onSubmit={submit}>
        <input
          aria-label="Underlying"
          placeholder="Symbol"
          list="underlying-list"
          value={query}
          spellCheck={false}
          onChange={(event) => setQuery(event.target.value)}
        />
        <datalist id="underlying-list">
          {underlyings.map((u) => (
            <option key={u.symbol} value={u.symbol} />
          ))}
        </datalist>
      </form>
      <nav className="tickers" aria-label="Underlyings">
        {strip.map((u) => (
          <Ticker
            key={u.symbol}
            hub={hub}
            symbol={u.symbol}
            initialSpot={u.spot}
            active={u.symbol === route.symbol}
            onSelect={() => go(u.symbol)}
          />
        ))}
      </nav>
      <nav className="views" aria-label="Views">
        {(["chain", "surface"] as const).map((view) => (
          <button
            key={view}
            type="button"
            className={view === route.view ? "active" : ""}
            onClick={() => route.symbol && go(route.symbol, view)}
          >
            {view === "chain" ? "Chain" : "Vol surface"}
          </button>
        ))}
      </nav>
      <ConnectionBadge hub={hub} />
    </header>
  );
}

interface TickerProps {
  hub: MarketHub;
  symbol: string;
  initialSpot: number | null;
  active: boolean;
  onSelect: () => void;
}

function Ticker({ hub, symbol, initialSpot, active, onSelect }: TickerProps) {
  const store = useTopic<UnderlyingRow>(hub, `underlying:${symbol}`);
  useStoreVersion(store);
  const row = store.rows.get(symbol);
  const spot = row?.spot ?? initialSpot;
  const changes = store.changes.get(symbol);
  const direction = flashDirection(changes, "spot", performance.now(), FLASH_MS);
  useNow(250, direction !== 0); // clears the flash when the spot stops moving
  const flash = direction > 0 ? " up" : direction < 0 ? " down" : "";
  return (
    <button
      type="button"
      className={`ticker${active ? " active" : ""}`}
      data-symbol={symbol}
      onClick={onSelect}
    >
      <span className="ticker-symbol">{symbol}</span>
      <span className={`ticker-spot num${flash}`} data-testid={`spot-${symbol}`}>
        {formatFixed(spot, 2)}
      </span>
    </button>
  );
}
