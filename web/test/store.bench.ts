/**
 * The UI's hot path: merging conflated hub updates into a chain store and rebuilding the
 * derived views. `npx vitest bench --run` (not part of `npm test`).
 */
import { bench, describe } from "vitest";
import { buildChainIndex } from "../src/model/chain";
import { RowStore } from "../src/model/store";
import { buildSmiles, buildSurface } from "../src/model/surface";
import type { ContractRow } from "../src/model/types";
import { CHAIN_TRACKED_FIELDS } from "../src/hub";
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
