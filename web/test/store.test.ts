import { describe, expect, it } from "vitest";
import { flashDirection, RowStore } from "../src/model/store";
import type { ContractRow } from "../src/model/types";
import { contract } from "./rows";

function chainStore() {
  return new RowStore<ContractRow>({ key: (r) => r.symbol, tracked: ["bid", "ask", "iv"] });
}

describe("RowStore", () => {
  it("replaces everything with a snapshot and takes its seq", () => {
    const store = chainStore();
    const a = contract({ strike: 100, right: "C", seq: 5 });
    const b = contract({ strike: 100, right: "P", seq: 6 });
    store.applySnapshot({ topic: "chain:SPY", seq: 10, rows: [a] });
    store.applySnapshot({ topic: "chain:SPY", seq: 12, rows: [b] });
    expect([...store.rows.keys()]).toEqual([b.symbol]);
    expect(store.seq).toBe(12);
    expect(store.loaded).toBe(true);
  });

  it("ignores an update older than the snapshot", () => {
    const store = chainStore();
    const row = contract({ strike: 100, right: "C", bid: 1, seq: 5 });
    store.applySnapshot({ topic: "chain:SPY", seq: 10, rows: [row] });
    const merged = store.applyUpdate(
      { topic: "chain:SPY", seq: 9, rows: [{ ...row, bid: 2, seq: 9 }] },
      1000,
    );
    expect(merged).toBe(0);
    expect(store.rows.get(row.symbol)!.bid).toBe(1);
    expect(store.seq).toBe(10);
  });

  it("merges newer updates and advances its seq", () => {
    const store = chainStore();
    const row = contract({ strike: 100, right: "C", bid: 1, seq: 5 });
    store.applySnapshot({ topic: "chain:SPY", seq: 10, rows: [row] });
    const version = store.version;
    store.applyUpdate({ topic: "chain:SPY", seq: 11, rows: [{ ...row, bid: 1.5, seq: 11 }] }, 1000);
    expect(store.rows.get(row.symbol)!.bid).toBe(1.5);
    expect(store.seq).toBe(11);
    expect(store.version).toBe(version + 1);
  });

  it("skips a row older than the row it holds", () => {
    const store = chainStore();
    const row = contract({ strike: 100, right: "C", bid: 1, seq: 20 });
    store.applySnapshot({ topic: "chain:SPY", seq: 20, rows: [row] });
    store.applyUpdate({ topic: "chain:SPY", seq: 21, rows: [{ ...row, bid: 0.5, seq: 15 }] }, 1000);
    expect(store.rows.get(row.symbol)!.bid).toBe(1);
  });

  it("merges an equal-seq row (greeks are written without a new seq)", () => {
    const store = chainStore();
    const row = contract({ strike: 100, right: "C", iv: null, seq: 20 });
    store.applySnapshot({ topic: "chain:SPY", seq: 20, rows: [row] });
    store.applyUpdate({ topic: "chain:SPY", seq: 20, rows: [{ ...row, iv: 0.25 }] }, 1000);
    expect(store.rows.get(row.symbol)!.iv).toBe(0.25);
  });

  it("keeps held fields when an update carries a partial row", () => {
    const store = new RowStore<{ symbol: string; spot: number; rate?: number }>({
      key: (r) => r.symbol,
      tracked: ["spot"],
    });
    store.applySnapshot({ topic: "underlying:SPY", seq: 1, rows: [{ symbol: "SPY", spot: 500, rate: 0.04 }] });
    store.applyUpdate({ topic: "underlying:SPY", seq: 2, rows: [{ symbol: "SPY", spot: 501 }] }, 50);
    expect(store.rows.get("SPY")).toEqual({ symbol: "SPY", spot: 501, rate: 0.04 });
  });

  it("adds new contracts and bumps its structure version", () => {
    const store = chainStore();
    store.applySnapshot({ topic: "chain:SPY", seq: 1, rows: [] });
    const structure = store.structure;
    const row = contract({ strike: 105, right: "P", seq: 2 });
    store.applyUpdate({ topic: "chain:SPY", seq: 2, rows: [row] }, 10);
    expect(store.rows.get(row.symbol)).toEqual(row);
    expect(store.structure).toBe(structure + 1);
  });

  it("stamps changed fields with the direction of the change", () => {
    const store = chainStore();
    const row = contract({ strike: 100, right: "C", bid: 1, ask: 1.2, iv: 0.2, seq: 1 });
    store.applySnapshot({ topic: "chain:SPY", seq: 1, rows: [row] });
    store.applyUpdate(
      { topic: "chain:SPY", seq: 2, rows: [{ ...row, bid: 1.1, ask: 1.15, seq: 2 }] },
      5000,
    );
    const changes = store.changes.get(row.symbol);
    expect(flashDirection(changes, "bid", 5100, 700)).toBe(1);
    expect(flashDirection(changes, "ask", 5100, 700)).toBe(-1);
    expect(flashDirection(changes, "iv", 5100, 700)).toBe(0);
    expect(flashDirection(changes, "bid", 5800, 700)).toBe(0);
    store.pruneChanges(6000, 700);
    expect(store.changes.has(row.symbol)).toBe(false);
  });

  it("notifies listeners on change only", () => {
    const store = chainStore();
    let calls = 0;
    const unsubscribe = store.subscribe(() => calls++);
    store.applySnapshot({ topic: "chain:SPY", seq: 3, rows: [] });
    store.applyUpdate({ topic: "chain:SPY", seq: 2, rows: [] }, 1);
    expect(calls).toBe(1);
    unsubscribe();
    store.applySnapshot({ topic: "chain:SPY", seq: 4, rows: [] });
    expect(calls).toBe(1);
  });
});

describe("RowStore underlying", () => {
  it("keeps the underlying a chain message carries and notifies when the spot moves", () => {
    const store = chainStore();
    const spy = (spot: number, seq: number) => ({ symbol: "SPY", spot, seq });
    store.applySnapshot({ topic: "chain:SPY", seq: 5, rows: [], underlying: spy(500, 5) });
    expect(store.underlying?.spot).toBe(500);
    let calls = 0;
    store.subscribe(() => calls++);
    store.applyUpdate({ topic: "chain:SPY", seq: 6, rows: [], underlying: spy(501, 6) }, 10);
    expect(store.underlying?.spot).toBe(501);
    expect(calls).toBe(1);
    store.applyUpdate({ topic: "chain:SPY", seq: 7, rows: [], underlying: spy(501, 6) }, 20);
    expect(calls).toBe(1);
    store.applyUpdate({ topic: "chain:SPY", seq: 4, rows: [], underlying: spy(499, 4) }, 30);
    expect(store.underlying?.spot).toBe(501);
  });
});
