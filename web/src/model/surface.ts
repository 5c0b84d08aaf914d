/**
 * Implied-volatility views built from live chain rows: smiles per series (expiry date and
 * settlement, `series.ts`: SPX a.m. and SPXW p.m. monthlies share a date and strikes but not a
 * smile), the ATM term structure and the surface grid (series x moneyness or strike) that the
 * 3D plot draws.
 *
 * A smile uses out-of-the-money options (puts below the spot, calls at and above it), as desks
 * do: an in-the-money option's price is mostly intrinsic value and its vol mostly noise. Only
 * two-sided markets count (a bid, and a spread of at most half the mid): a vol implied from a
 * 0.01 x 0.02 wing quote says nothing about the surface.
 * Interpolation is linear in strike, inside the listed strikes only (no extrapolation): cells
 * outside an expiry's strikes are null and the surface shows a gap there.
 * Time is ACT/365 to the expiry instant: the 16:00 New York close of the expiry date, or the
 * 09:30 opening for a.m.-settled series.
 */

import { compareSeries, parseSeriesKey, seriesKey } from "./series";
import type { ContractRow } from "./types";

export const MS_PER_DAY = 86_400_000;
const MS_PER_YEAR = 365 * MS_PER_DAY;
/** Vols outside this range are quotes without information (crossed or stub markets). */
const MIN_IV = 0.001;
const MAX_IV = 5;
/** Widest (ask - bid) / mid of a quote whose vol is used. */
const MAX_RELATIVE_SPREAD = 0.5;

export interface SmilePoint {
  strike: number;
  /** strike / spot */
  moneyness: number;
  /** Vol implied by the mid, the bid and the ask (the latter two null when unknown). */
  iv: number;
  ivBid: number | null;
  ivAsk: number | null;
}

export interface Smile {
  /** Series key (`series.ts`): the expiry date, `-am` for an a.m.-settled series. */
  series: string;
  /** YYYY-MM-DD */
  expiry: string;
  amSettled: boolean;
  /** ACT/365 years to the expiry instant (09:30 or 16:00 New York). */
  years: number;
  calls: SmilePoint[];
  puts: SmilePoint[];
  /** Out-of-the-money vols by ascending strike. */
  otm: SmilePoint[];
}

export interface TermPoint {
  series: string;
  expiry: string;
  days: number;
  iv: number;
}

export interface SurfaceGrid {
  axis: SurfaceAxis;
  /** Moneyness (strike / spot) or strike, ascending. */
  x: number[];
  /** Days to expiry of each row of z, ascending. */
  y: number[];
  /** Series key of each row of z. */
  series: string[];
  /** z[i][j]: vol of series i at x[j]; null where the series has no strikes around x[j]. */
  z: (number | null)[][];
}

export type SurfaceAxis = "moneyness" | "strike";

export interface SurfaceOptions {
  axis: SurfaceAxis;
  /** Moneyness range and the number of grid columns. */
  lower: number;
  upper: number;
  points: number;
}

/**
 * Expiries closer than this are left out of the surface (not of the smiles and the term
 * structure): a same-week smile spans a sliver of moneyness and would only draw a spike.
 */
export const SURFACE_MIN_DAYS = 2;

export const DEFAULT_SURFACE: SurfaceOptions = {
  axis: "moneyness",
  lower: 0.8,
  upper: 1.2,
  points: 41,
};

/** Whether US Eastern daylight time is in force on that UTC date (second Sunday of March to
 * first Sunday of November). */
function easternDaylightTime(year: number, month: number, day: number): boolean {
  if (month < 3 || month > 11) return false;
  if (month > 3 && month < 11) return true;
  const firstWeekday = new Date(Date.UTC(year, month - 1, 1)).getUTCDay();
  const firstSunday = 1 + ((7 - firstWeekday) % 7);
  return month === 3 ? day >= firstSunday + 7 : day < firstSunday;
}

/**
 * Epoch ms of the expiry instant of an expiry date (YYYY-MM-DD): the 16:00 New York close, or
 * the 09:30 opening for an a.m.-settled series.
 */
export function expiryMs(expiry: string, amSettled = false): number {
  const [year, month, day] = expiry.split("-").map(Number);
  const utcOffset = easternDaylightTime(year, month, day) ? 4 : 5;
  return amSettled
    ? Date.UTC(year, month - 1, day, 9 + utcOffset, 30)
    : Date.UTC(year, month - 1, day, 16 + utcOffset);
}

export function yearsToExpiry(expiry: string, nowMs: number, amSettled = false): number {
  return (expiryMs(expiry, amSettled) - nowMs) / MS_PER_YEAR;
}

export function daysToExpiry(expiry: string, nowMs: number, amSettled = false): number {
  return (expiryMs(expiry, amSettled) - nowMs) / MS_PER_DAY;
}

/** Calendar days from today in New York to the expiry date: 0 on expiration day (0DTE). */
export function calendarDaysToExpiry(expiry: string, nowMs: number): number {
  const utc = new Date(nowMs);
  const daylight = easternDaylightTime(
    utc.getUTCFullYear(),
    utc.getUTCMonth() + 1,
    utc.getUTCDate(),
  );
  const newYork = new Date(nowMs - (daylight ? 4 : 5) * 3_600_000);
  const today = Date.UTC(newYork.getUTCFullYear(), newYork.getUTCMonth(), newYork.getUTCDate());
  const [year, month, day] = expiry.split("-").map(Number);
  return Math.round((Date.UTC(year, month - 1, day) - today) / MS_PER_DAY);
}

function usableVol(iv: number | null | undefined): iv is number {
  return typeof iv === "number" && Number.isFinite(iv) && iv > MIN_IV && iv < MAX_IV;
}

/** A two-sided market narrow enough for its mid to mean something. */
export function quotable(bid: number | null, ask: number | null): boolean {
  if (typeof bid !== "number" || typeof ask !== "number" || !(bid > 0) || !(ask >= bid)) {
    return false;
  }
  return ask - bid <= MAX_RELATIVE_SPREAD * 0.5 * (bid + ask);
}

const byStrike = (a: SmilePoint, b: SmilePoint) => a.strike - b.strike;

/** Out-of-the-money vols by ascending strike: puts below `spot`, calls at or above it. */
export function outOfTheMoney(
  calls: readonly SmilePoint[],
  puts: readonly SmilePoint[],
  spot: number,
): SmilePoint[] {
  return [
    ...puts.filter((p) => p.strike < spot),
    ...calls.filter((p) => p.strike >= spot),
  ].sort(byStrike);
}

/**
 * Smiles of every unexpired series in expiry order (an a.m. series before the p.m. series of
 * the same date), from one pass over the rows. Rows without a usable vol are left out.
 */
export function buildSmiles(rows: Iterable<ContractRow>, spot: number, nowMs: number): Smile[] {
  const groups = new Map<string, { calls: SmilePoint[]; puts: SmilePoint[] }>();
  for (const row of rows) {
    if (!usableVol(row.iv) || !quotable(row.bid, row.ask)) continue;
    const key = seriesKey(row);
    let group = groups.get(key);
    if (group === undefined) {
      group = { calls: [], puts: [] };
      groups.set(key, group);
    }
    const point: SmilePoint = {
      strike: row.strike,
      moneyness: row.strike / spot,
      iv: row.iv,
      ivBid: usableVol(row.iv_bid) ? row.iv_bid : null,
      ivAsk: usableVol(row.iv_ask) ? row.iv_ask : null,
    };
    (row.right === "C" ? group.calls : group.puts).push(point);
  }
  const smiles: Smile[] = [];
  for (const key of [...groups.keys()].sort(compareSeries)) {
    const { expiry, amSettled } = parseSeriesKey(key)!;
    const years = yearsToExpiry(expiry, nowMs, amSettled);
    if (years <= 0) continue;
    const { calls, puts } = groups.get(key)!;
    calls.sort(byStrike);
    puts.sort(byStrike);
    smiles.push({
      series: key,
      expiry,
      amSettled,
      years,
      calls,
      puts,
      otm: outOfTheMoney(calls, puts, spot),
    });
  }
  return smiles;
}

/**
 * Linear interpolation of `ys` over ascending `xs` at `x`; null outside [xs[0], xs[n-1]].
 */
export function interpolate(xs: readonly number[], ys: readonly number[], x: number): number | null {
  const n = xs.length;
  if (n === 0 || x < xs[0] || x > xs[n - 1]) return null;
  let low = 0;
  let high = n - 1;
  while (high - low > 1) {
    const mid = (low + high) >> 1;
    if (xs[mid] <= x) low = mid;
    else high = mid;
  }
  if (xs[high] === xs[low]) return ys[low];
  const weight = (x - xs[low]) / (xs[high] - xs[low]);
  return ys[low] + weight * (ys[high] - ys[low]);
}

/** The smile's vol at the spot (null when the spot is outside its strikes). */
export function atmVol(smile: Smile, spot: number): number | null {
  return interpolate(
    smile.otm.map((p) => p.strike),
    smile.otm.map((p) => p.iv),
    spot,
  );
}

/** ATM vol per series, for the series whose strikes bracket the spot. */
export function termStructure(smiles: readonly Smile[], spot: number): TermPoint[] {
  const points: TermPoint[] = [];
  for (const smile of smiles) {
    const iv = atmVol(smile, spot);
    if (iv !== null) {
      points.push({ series: smile.series, expiry: smile.expiry, days: smile.years * 365, iv });
    }
  }
  return points;
}

/** Share of the surface's expiries whose quoted strikes reach each edge of its range. */
const RANGE_COVERAGE = 0.75;

function quantile(values: number[], q: number): number {
  values.sort((a, b) => a - b);
  const position = (values.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return values[low] + (values[high] - values[low]) * (position - low);
}

/**
 * The moneyness range the surface spans: the range that RANGE_COVERAGE of the expiries quote
 * across, within [0.5, 1.5]. Null without smiles of at least three points.
 */
export function surfaceRange(smiles: readonly Smile[]): [number, number] | null {
  const full = smiles.filter((s) => s.otm.length >= 3);
  if (full.length === 0) return null;
  const lower = quantile(full.map((s) => s.otm[0].moneyness), RANGE_COVERAGE);
  const upper = quantile(full.map((s) => s.otm[s.otm.length - 1].moneyness), 1 - RANGE_COVERAGE);
  return [Math.max(0.5, Math.min(lower, 0.99)), Math.min(1.5, Math.max(upper, 1.01))];
}

/**
 * Fill interior holes of each column along time: a null between two expiries that have a vol
 * at that moneyness gets the vol of total variance (vol² x years) interpolated linearly in
 * time, the calendar interpolation desks use. Nothing is extrapolated past the first or last
 * expiry with a value.
 */
export function fillCalendarGaps(years: readonly number[], z: (number | null)[][]): void {
  const columns = z[0]?.length ?? 0;
  for (let j = 0; j < columns; j++) {
    let previous = -1;
    for (let i = 0; i < z.length; i++) {
      if (z[i][j] === null) continue;
      if (previous >= 0 && i - previous > 1) {
        const t0 = years[previous];
        const t1 = years[i];
        const w0 = z[previous][j]! ** 2 * t0;
        const w1 = z[i][j]! ** 2 * t1;
        for (let k = previous + 1; k < i; k++) {
          const w = w0 + ((w1 - w0) * (years[k] - t0)) / (t1 - t0);
          z[k][j] = w > 0 && years[k] > 0 ? Math.sqrt(w / years[k]) : null;
        }
      }
      previous = i;
    }
  }
}

/**
 * The surface grid: one row per expiry at least SURFACE_MIN_DAYS out with at least three vols,
 * one column per moneyness step
 * in [lower, upper] (`surfaceRange` when not given); with axis "strike" the columns are the
 * same points as strikes. Holes between expiries are filled by `fillCalendarGaps`.
 */
export function buildSurface(
  allSmiles: readonly Smile[],
  spot: number,
  options: Partial<SurfaceOptions> = {},
): SurfaceGrid {
  const smiles = allSmiles.filter((s) => s.years * 365 >= SURFACE_MIN_DAYS);
  const axis = options.axis ?? DEFAULT_SURFACE.axis;
  const points = options.points ?? DEFAULT_SURFACE.points;
  const range = surfaceRange(smiles) ?? [DEFAULT_SURFACE.lower, DEFAULT_SURFACE.upper];
  const lower = options.lower ?? range[0];
  const upper = options.upper ?? range[1];
  const moneyness = Array.from(
    { length: points },
    (_, j) => lower + ((upper - lower) * j) / Math.max(points - 1, 1),
  );
  const strikes = moneyness.map((m) => m * spot);
  const years: number[] = [];
  const series: string[] = [];
  const z: (number | null)[][] = [];
  for (const smile of smiles) {
    if (smile.otm.length < 3) continue;
    const xs = smile.otm.map((p) => p.strike);
    const ys = smile.otm.map((p) => p.iv);
    const row = strikes.map((strike) => interpolate(xs, ys, strike));
    if (row.every((v) => v === null)) continue;
    years.push(smile.years);
    series.push(smile.series);
    z.push(row);
  }
  fillCalendarGaps(years, z);
  const x = axis === "moneyness" ? moneyness : strikes.map((s) => Math.round(s * 100) / 100);
  return { axis, x, y: years.map((t) => t * 365), series, z };
}
