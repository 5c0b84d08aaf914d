/**
 * A chain as a trader reads it: per series (expiry date and settlement: SPX a.m. and SPXW p.m.
 * monthlies share a date and strikes, see `series.ts`), one line per strike with the call on the
 * left and the put on the right. The index holds symbols, not rows, so it is rebuilt only when
 * the set of contracts changes; the grid looks the live rows up in the store when it renders a
 * line.
 */

import { compareSeries, seriesKey } from "./series";
import type { ContractRow } from "./types";

export interface ChainLine {
  strike: number;
  /** Symbols of the call and the put at this strike, when listed. */
  call?: string;
  put?: string;
}

export interface ChainIndex {
  /** Series keys (`series.ts`) in expiry order. */
  series: string[];
  /** Lines of each series in ascending strike order. */
  lines: Map<string, ChainLine[]>;
}

export function buildChainIndex(rows: Iterable<ContractRow>): ChainIndex {
  const bySeries = new Map<string, Map<number, ChainLine>>();
  for (const row of rows) {
    const key = seriesKey(row);
    let strikes = bySeries.get(key);
    if (strikes === undefined) {
      strikes = new Map();
      bySeries.set(key, strikes);
    }
    let line = strikes.get(row.strike);
    if (line === undefined) {
      line = { strike: row.strike };
      strikes.set(row.strike, line);
    }
    if (row.right === "C") line.call = row.symbol;
    else line.put = row.symbol;
  }
  const series = [...bySeries.keys()].sort(compareSeries);
  const lines = new Map<string, ChainLine[]>();
  for (const key of series) {
    const strikes = bySeries.get(key)!;
    lines.set(
      key,
      [...strikes.values()].sort((a, b) => a.strike - b.strike),
    );
  }
  return { series, lines };
}

/**
 * Index of the first line whose strike is at or above `spot` (lines.length when none is):
 * the spot sits just above that line in the grid.
 */
export function spotBoundary(lines: readonly ChainLine[], spot: number | null): number {
  if (spot === null || !Number.isFinite(spot)) return -1;
  let low = 0;
  let high = lines.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (lines[mid].strike < spot) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Index of the line whose strike is nearest `spot` (-1 for no lines or no spot). */
export function atTheMoney(lines: readonly ChainLine[], spot: number | null): number {
  const boundary = spotBoundary(lines, spot);
  if (boundary < 0 || lines.length === 0) return -1;
  if (boundary === 0) return 0;
  if (boundary === lines.length) return lines.length - 1;
  const below = spot! - lines[boundary - 1].strike;
  const above = lines[boundary].strike - spot!;
  return below <= above ? boundary - 1 : boundary;
}
