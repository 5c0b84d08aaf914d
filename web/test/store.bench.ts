/**
 * The UI's hot path: decoding hub frames (MessagePack and JSON), merging conflated updates into
 * a chain store and rebuilding the derived views. `npm run bench` (not part of `npm test`).
 */
import { type IHubProtocol, NullLogger } from "@microsoft/signalr";
import { bench, describe } from "vitest";
import { buildChainIndex } from "../src/model/chain";
import { RowStore } from "../src/model/store";
import { buildSmiles, buildSurface } from "../src/model/surface";
import type { ContractRow } from "../src/model/types";
import { CHAIN_TRACKED_FIELDS, hubProtocol } from "../src/hub";
import { jsonFrame, messagePackFrame, type Value } from "./msgpack";
import { contract } from "./rows";

const EXPIRIES = Array.from({ length: 30 }, (_, i) => {
  const d = new Date(Date.UTC(2026, 11, 1) + i * 7 * 86_400_000);
  return d.toISOString().slice(0, 10);
});
/** A SPX-sized chain: 30 expiries x 200 strikes x call/put = 12,000 contracts. */
const ROWS: ContractRow[] = EXPIRIES.flatMap((expiry) =>
  Array.from({ length: 200 }, (_, k) => 5000 + k * 10).flatMap((strike) =>
    (["C", "P"] as const).map((right) =>
      contract({ expiry, strike, right, iv: 0.15 + Math.abs(strike - 6000) / 20000 }),
    ),
  ),
);
const NOW = Date.UTC(2026, 10, 24, 15);

function store(): RowStore<ContractRow> {
  const s = new RowStore<ContractRow>({ key: (r) => r.symbol, tracked: CHAIN_TRACKED_FIELDS });
  s.applySnapshot({ topic: "chain:SPX", seq: 1, rows: ROWS });
  return s;
}

describe("chain store", () => {
  const s = store();
  let seq = 1;
  // One push interval's worth of a busy chain: 2,000 changed contracts.
  const updates = Array.from({ length: 8 }, (_, u) =>
    ROWS.filter((_, i) => i % 6 === u % 6).slice(0, 2000).map((r) => ({ ...r, bid: (r.bid ?? 0) + u * 0.01 })),
  );
  let u = 0;
  bench("applyUpdate, 2,000 rows", () => {
    seq++;
    s.applyUpdate({ topic: "chain:SPX", seq, rows: updates[u++ % updates.length] }, seq);
  });
  bench("buildChainIndex, 12,000 contracts", () => {
    buildChainIndex(s.rows.values());
  });
  bench("buildSmiles + buildSurface, 12,000 contracts", () => {
    buildSurface(buildSmiles(s.rows.values(), 6000, NOW), 6000);
  });
});

/**
 * A Subscribe completion of `count` rows as the daemon sends it: every column set, vols and
 * greeks as full doubles, ns timestamps (uint64 in MessagePack).
 */
function snapshotMessage(count: number): Value {
  const ts = 1_795_557_140_248_016_593n;
  const rows: Value[] = [];
  for (let i = 0; i < count; i++) {
    const r = ROWS[i % ROWS.length];
    const x = Math.sin(i + 1) * 0.5 + 0.5; // deterministic, full-precision doubles
    rows.push({
      symbol: r.symbol,
      osi: r.osi,
      underlying: "SPX",
      expiry: r.expiry,
      right: r.right,
      strike: r.strike,
      bid: Math.round(x * 20000) / 100,
      ask: Math.round(x * 20000 + 60) / 100,
      bid_size: 100 + (i % 300),
      ask_size: 90 + (i % 311),
      last: i % 3 === 0 ? null : Math.round(x * 20030) / 100,
      volume: i % 97,
      open_interest: 20_000 + i,
      iv: 0.1 + x * 0.2,
      iv_bid: 0.099 + x * 0.2,
      iv_ask: 0.101 + x * 0.2,
      delta: x,
      gamma: x * 0.0031,
      vega: x * 1339.77,
      theta: -x * 1766.7,
      rho: x * 429.55,
      vanna: (x - 0.5) * 0.027,
      charm: -x * 0.643,
      vomma: x * 1.97,
      theo: x * 200.000000001,
      quote_ts: ts + BigInt(i * 7919),
      greeks_ts: ts + BigInt(i * 104_729),
      seq: 4000 + (i % 500),
    });
  }
  const underlying = { symbol: "SPX", spot: 6598.5, spot_ts: ts, rate: 0.045, seq: 4500 };
  return { topic: "chain:SPX", seq: 4500, underlying, rows };
}

/** `npm run bench`: the snapshot of an SPX-sized chain through each hub protocol. */
const msgpack = await hubProtocol("messagepack");
const json = await hubProtocol("json");
for (const count of [12_000, 24_000]) {
  describe(`hub protocol, ${count.toLocaleString("en-US")}-row snapshot`, () => {
    const message = snapshotMessage(count);
    const completion = (m: Value) => [3, {}, "0", 3, m];
    const binary = messagePackFrame(completion(message));
    const text = jsonFrame({ type: 3, invocationId: "0", result: message });
    const parse = (protocol: IHubProtocol, frame: string | ArrayBuffer) =>
      protocol.parseMessages(frame, NullLogger.instance);
    const sizes = `${(binary.byteLength / 1e6).toFixed(1)} MB vs ${(text.length / 1e6).toFixed(1)} MB`;
    bench(`MessagePack (${sizes})`, () => {
      parse(msgpack, binary);
    });
    bench("JSON", () => {
      parse(json, text);
    });
  });
}
