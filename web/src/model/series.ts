/**
 * Option series: the contracts of one underlying that expire together. An expiry date is not
 * enough to name one: SPX lists a.m.-settled standard monthlies (OSI root `SPX`, expiring at the
 * 09:30 opening) and p.m.-settled SPXW (16:00) on the same third Friday, with the same strikes;
 * likewise NDX/NDXP and RUT/RUTW. Each is its own series: its own chain, smile and time to
 * expiry. Adjusted contracts (after a corporate action; root with a digit, e.g. `AAPL1`) have
 * other deliverables and are their own series too.
 *
 * A series key is the expiry date for p.m.-settled standard contracts (`2026-12-18`, what deep
 * links always were), with `-am` for a.m. settlement and `-<root>` for an adjusted root:
 * `2026-12-18-am`, `2026-12-18-aapl1`.
 */

import { formatExpiry } from "./format";
import type { ContractRow } from "./types";

/**
 * OSI roots whose options settle a.m., on the expiry day's opening prints (09:30 New York):
 * the standard monthly index series, and VIX options, weeklies included. Mirrors
 * `flashalpha.instruments.AM_SETTLED_ROOTS`.
 */
export const AM_SETTLED_ROOTS: ReadonlySet<string> = new Set([
  "SPX",
  "NDX",
  "RUT",
  "DJX",
  "VIX",
  "VIXW",
]);

export interface Series {
  key: string;
  /** YYYY-MM-DD */
  expiry: string;
  /** Expires at the 09:30 opening, not the 16:00 close. */
  amSettled: boolean;
  /** The OSI root of an adjusted series (null for standard contracts). */
  adjustedRoot: string | null;
}

const KEY = /^(\d{4}-\d{2}-\d{2})(-am)?(?:-([a-z0-9]{1,6}))?$/;

/** The OSI root: the symbol's first six characters, space-padded. */
export function osiRoot(osi: string): string {
  return osi.slice(0, 6).trimEnd();
}

/** Suffix of the series key per padded root (a chain has a handful of roots). */
const suffixes = new Map<string, string>();

function suffixOf(paddedRoot: string): string {
  let suffix = suffixes.get(paddedRoot);
  if (suffix === undefined) {
    const root = paddedRoot.trimEnd();
    suffix = AM_SETTLED_ROOTS.has(root) ? "-am" : "";
    if (/\d/.test(root)) suffix += `-${root.toLowerCase()}`;
    suffixes.set(paddedRoot, suffix);
  }
  return suffix;
}

/** The key of the row's series. */
export function seriesKey(row: Pick<ContractRow, "expiry" | "osi">): string {
  return row.expiry + suffixOf(row.osi.slice(0, 6));
}

/** The series a key names; null for anything that is not a key. */
export function parseSeriesKey(key: string): Series | null {
  const match = KEY.exec(key);
  if (match === null) return null;
  return {
    key,
    expiry: match[1],
    amSettled: match[2] !== undefined,
    adjustedRoot: match[3]?.toUpperCase() ?? null,
  };
}

function parsed(key: string): Series {
  return parseSeriesKey(key) ?? { key, expiry: key, amSettled: false, adjustedRoot: null };
}

/** Series keys in expiry order; on one date the a.m. series (it expires first) comes first. */
export function compareSeries(a: string, b: string): number {
  const x = parsed(a);
  const y = parsed(b);
  if (x.expiry !== y.expiry) return x.expiry < y.expiry ? -1 : 1;
  if (x.amSettled !== y.amSettled) return x.amSettled ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** "Dec 18 '26", "Dec 18 '26 AM", "Dec 18 '26 AAPL1". */
export function formatSeries(key: string): string {
  const series = parsed(key);
  let label = formatExpiry(series.expiry);
  if (series.amSettled) label += " AM";
  if (series.adjustedRoot) label += ` ${series.adjustedRoot}`;
  return label;
}
