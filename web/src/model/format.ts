/** Number formats of the grid: fixed decimals, tabular, a dash for missing values. */

const DASH = "–";

const fixedFormats = new Map<number, Intl.NumberFormat>();

function fixed(digits: number): Intl.NumberFormat {
  let format = fixedFormats.get(digits);
  if (format === undefined) {
    format = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    fixedFormats.set(digits, format);
  }
  return format;
}

export function formatFixed(value: number | null | undefined, digits: number): string {
  return typeof value === "number" && Number.isFinite(value) ? fixed(digits).format(value) : DASH;
}

/** A vol as percent with one decimal: 0.1834 → "18.3". */
export function formatVol(value: number | null | undefined): string {
  return typeof value === "number" && Number.isFinite(value) ? fixed(1).format(value * 100) : DASH;
}

/** Counts with thousands separators; large ones abbreviated (12.3k, 1.2M). */
export function formatCount(value: number | null | undefined): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return DASH;
  if (value >= 1e6) return `${fixed(1).format(value / 1e6)}M`;
  if (value >= 1e5) return `${fixed(0).format(value / 1e3)}k`;
  return fixed(0).format(value);
}

/** A strike without trailing zeros beyond cents: 585 → "585", 582.5 → "582.5". */
export function formatStrike(value: number): string {
  return Number.isInteger(value) ? fixed(0).format(value) : fixed(value * 10 === Math.round(value * 10) ? 1 : 2).format(value);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "2025-12-19" → "Dec 19 '25". */
export function formatExpiry(expiry: string): string {
  const [year, month, day] = expiry.split("-");
  return `${MONTHS[Number(month) - 1]} ${Number(day)} '${year.slice(2)}`;
}
