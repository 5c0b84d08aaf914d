/** Wire shapes of DESIGN.md §5: the public contract row and the hub's topic messages. */

export type Right = "C" | "P";

/** One option contract as REST and the hub serve it; missing values are null. */
export interface ContractRow {
  /** Polygon form, e.g. `O:SPY251219C00650000`: the key of every row map. */
  symbol: string;
  osi: string;
  underlying: string;
  /** YYYY-MM-DD */
  expiry: string;
  right: Right;
  strike: number;
  bid: number | null;
  ask: number | null;
  bid_size: number | null;
  ask_size: number | null;
  last: number | null;
  volume: number | null;
  open_interest: number | null;
  iv: number | null;
  iv_bid?: number | null;
  iv_ask?: number | null;
  delta: number | null;
  gamma: number | null;
  vega: number | null;
  theta: number | null;
  rho?: number | null;
  vanna?: number | null;
  charm?: number | null;
  vomma?: number | null;
  theo?: number | null;
  quote_ts?: number | null;
  greeks_ts?: number | null;
  /** The state's seq of the row's last market-data change. */
  seq: number;
}

/** One underlying: `GET /api/v1/underlyings` and the `underlying:{SYMBOL}` topic. */
export interface UnderlyingRow {
  symbol: string;
  spot: number | null;
  contracts?: number;
  seq?: number;
  [field: string]: unknown;
}

/** A Subscribe snapshot or an `update`: the rows of one topic as of `seq`. */
export interface TopicMessage<R> {
  topic: string;
  seq: number;
  rows: R[];
  /** Chain topics: the underlying (spot) as of the same seq. */
  underlying?: UnderlyingRow;
}
