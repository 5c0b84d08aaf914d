import type { ContractRow } from "../src/model/types";

/**
 * A contract row with every field set; override what the test is about. `root` is the OSI root
 * (`SPXW`, `SPX`, ...), SPY by default.
 */
export function contract(
  overrides: Partial<ContractRow> & { strike: number; right: "C" | "P" },
  root = "SPY",
): ContractRow {
  const expiry = overrides.expiry ?? "2026-12-18";
  const [year, month, day] = expiry.split("-");
  const strikeCode = String(Math.round(overrides.strike * 1000)).padStart(8, "0");
  const code = `${year.slice(2)}${month}${day}${overrides.right}${strikeCode}`;
  return {
    symbol: `O:${root}${code}`,
    osi: `${root.padEnd(6)}${code}`,
    underlying: root === "SPXW" ? "SPX" : root,
    expiry,
    bid: 1.0,
    ask: 1.1,
    bid_size: 10,
    ask_size: 12,
    last: 1.05,
    volume: 0,
    open_interest: 100,
    iv: 0.2,
    iv_bid: 0.19,
    iv_ask: 0.21,
    delta: 0.5,
    gamma: 0.01,
    vega: 0.2,
    theta: -0.05,
    seq: 1,
    ...overrides,
  };
}
