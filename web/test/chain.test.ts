import { describe, expect, it } from "vitest";
import { atTheMoney, buildChainIndex, spotBoundary } from "../src/model/chain";
import { contract } from "./rows";

describe("buildChainIndex", () => {
  const rows = [
    contract({ strike: 110, right: "P", expiry: "2026-12-18" }),
    contract({ strike: 100, right: "C", expiry: "2026-12-18" }),
    contract({ strike: 100, right: "P", expiry: "2026-12-18" }),
    contract({ strike: 105, right: "C", expiry: "2026-12-18" }),
    contract({ strike: 95, right: "C", expiry: "2026-11-20" }),
  ];

  it("orders expiries and strikes ascending", () => {
    const index = buildChainIndex(rows);
    expect(index.series).toEqual(["2026-11-20", "2026-12-18"]);
    expect(index.lines.get("2026-12-18")!.map((l) => l.strike)).toEqual([100, 105, 110]);
  });

  it("puts the call on the left and the put on the right of each strike", () => {
    const lines = buildChainIndex(rows).lines.get("2026-12-18")!;
    expect(lines[0]).toEqual({ strike: 100, call: rows[1].symbol, put: rows[2].symbol });
    expect(lines[1]).toEqual({ strike: 105, call: rows[3].symbol });
    expect(lines[2]).toEqual({ strike: 110, put: rows[0].symbol });
  });

  it("is empty for no rows", () => {
    expect(buildChainIndex([])).toEqual({ series: [], lines: new Map() });
  });
});

describe("spot position", () => {
  const lines = [90, 95, 100, 105].map((strike) => ({ strike }));

  it("finds the first strike at or above the spot", () => {
    expect(spotBoundary(lines, 97)).toBe(2);
    expect(spotBoundary(lines, 100)).toBe(2);
    expect(spotBoundary(lines, 80)).toBe(0);
    expect(spotBoundary(lines, 120)).toBe(4);
    expect(spotBoundary(lines, null)).toBe(-1);
  });

  it("finds the nearest strike", () => {
    expect(atTheMoney(lines, 97)).toBe(1);
    expect(atTheMoney(lines, 98)).toBe(2);
    expect(atTheMoney(lines, 10)).toBe(0);
    expect(atTheMoney(lines, 1000)).toBe(3);
    expect(atTheMoney([], 100)).toBe(-1);
  });
});
