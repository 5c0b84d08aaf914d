/**
 * SPX a.m.-settled monthlies (root SPX, 09:30) and SPXW p.m. series (16:00) on the same third
 * Friday, with the same strikes: two series everywhere, never one chain or smile with two
 * contracts per strike.
 */
import { describe, expect, it } from "vitest";
import { buildChainIndex } from "../src/model/chain";
import {
  AM_SETTLED_ROOTS,
  compareSeries,
  formatSeries,
  osiRoot,
  parseSeriesKey,
  seriesKey,
} from "../src/model/series";
import {
  buildSmiles,
  buildSurface,
  daysToExpiry,
  expiryMs,
  termStructure,
  yearsToExpiry,
} from "../src/model/surface";
import { parseRoute, routePath } from "../src/route";
import { contract } from "./rows";

const NOW = Date.UTC(2026, 10, 2, 15); // 2026-11-02 15:00 UTC
const MONTHLY = "2026-12-18";
const STRIKES = [5800, 5900, 6000, 6100, 6200];

/** The SPX chain on a monthly date: SPX (a.m.) and SPXW (p.m.), every strike in both. */
function spxRows(amVol = 0.2, pmVol = 0.18) {
  return ["SPX", "SPXW"].flatMap((root) =>
    STRIKES.flatMap((strike) =>
      (["C", "P"] as const).map((right) =>
        contract(
          {
            expiry: MONTHLY,
            strike,
            right,
            underlying: "SPX",
            iv: (root === "SPX" ? amVol : pmVol) + (strike - 6000) ** 2 * 1e-8,
          },
          root,
        ),
      ),
    ),
  );
}

describe("series keys", () => {
  it("name the settlement and adjusted roots", () => {
    const spx = contract({ expiry: MONTHLY, strike: 6000, right: "C" }, "SPX");
    const spxw = contract({ expiry: MONTHLY, strike: 6000, right: "C" }, "SPXW");
    const adjusted = contract({ expiry: MONTHLY, strike: 150, right: "C" }, "AAPL1");
    expect(spx.osi).toBe("SPX   261218C06000000");
    expect(osiRoot(spx.osi)).toBe("SPX");
    expect([seriesKey(spx), seriesKey(spxw), seriesKey(adjusted)]).toEqual([
      "2026-12-18-am",
      "2026-12-18",
      "2026-12-18-aapl1",
    ]);
    expect(seriesKey(contract({ expiry: MONTHLY, strike: 20, right: "C" }, "VIXW"))).toBe(
      "2026-12-18-am",
    );
    for (const root of ["NDX", "RUT", "DJX", "VIX"]) expect(AM_SETTLED_ROOTS.has(root)).toBe(true);
    for (const root of ["SPXW", "NDXP", "RUTW", "XSP", "SPY"]) {
      expect(AM_SETTLED_ROOTS.has(root)).toBe(false);
    }
  });

  it("parse, sort and format", () => {
    expect(parseSeriesKey("2026-12-18-am")).toEqual({
      key: "2026-12-18-am",
      expiry: MONTHLY,
      amSettled: true,
      adjustedRoot: null,
    });
    expect(parseSeriesKey("2026-12-18-aapl1")?.adjustedRoot).toBe("AAPL1");
    expect(parseSeriesKey("12/18/2026")).toBeNull();
    expect(
      ["2026-12-19", "2026-12-18", "2026-12-18-am", "2026-12-11"].sort(compareSeries),
    ).toEqual(["2026-12-11", "2026-12-18-am", "2026-12-18", "2026-12-19"]);
    expect(formatSeries("2026-12-18")).toBe("Dec 18 '26");
    expect(formatSeries("2026-12-18-am")).toBe("Dec 18 '26 AM");
    expect(formatSeries("2026-12-18-aapl1")).toBe("Dec 18 '26 AAPL1");
  });

  it("survive deep links", () => {
    expect(parseRoute("/chain/SPX", "?expiry=2026-12-18-AM").expiry).toBe("2026-12-18-am");
    expect(parseRoute("/chain/SPX", "?expiry=2026-12-18-pm-x").expiry).toBeNull();
    expect(routePath({ view: "surface", symbol: "SPX", expiry: "2026-12-18-am" })).toBe(
      "/surface/SPX?expiry=2026-12-18-am",
    );
  });
});

describe("expiry instant", () => {
  it("is the 09:30 opening for a.m. series, the 16:00 close otherwise", () => {
    expect(new Date(expiryMs(MONTHLY, true)).toISOString()).toBe("2026-12-18T14:30:00.000Z");
    expect(new Date(expiryMs("2026-06-19", true)).toISOString()).toBe("2026-06-19T13:30:00.000Z");
    expect(new Date(expiryMs(MONTHLY)).toISOString()).toBe("2026-12-18T21:00:00.000Z");
    expect(daysToExpiry(MONTHLY, NOW) - daysToExpiry(MONTHLY, NOW, true)).toBeCloseTo(6.5 / 24, 12);
    expect(yearsToExpiry(MONTHLY, NOW, true)).toBeCloseTo(
      (Date.UTC(2026, 11, 18, 14, 30) - NOW) / (365 * 86_400_000),
      15,
    );
  });
});

describe("SPX a.m. and p.m. series on one date", () => {
  it("are two chain series with one call and one put per strike", () => {
    const rows = spxRows();
    const index = buildChainIndex(rows);
    expect(index.series).toEqual(["2026-12-18-am", "2026-12-18"]);
    for (const [key, root] of [
      ["2026-12-18-am", "SPX"],
      ["2026-12-18", "SPXW"],
    ]) {
      const lines = index.lines.get(key)!;
      expect(lines.map((l) => l.strike)).toEqual(STRIKES);
      for (const line of lines) {
        expect(line.call).toBe(`O:${root}261218C0${line.strike}000`);
        expect(line.put).toBe(`O:${root}261218P0${line.strike}000`);
      }
    }
  });

  it("have a smile each, timed to their own expiry instant", () => {
    const smiles = buildSmiles(spxRows(0.2, 0.18), 6000, NOW);
    expect(smiles.map((s) => [s.series, s.expiry, s.amSettled])).toEqual([
      ["2026-12-18-am", MONTHLY, true],
      ["2026-12-18", MONTHLY, false],
    ]);
    const [am, pm] = smiles;
    expect(am.otm.map((p) => p.strike)).toEqual(STRIKES);
    expect(pm.otm.map((p) => p.strike)).toEqual(STRIKES);
    expect(am.otm[2].iv).toBeCloseTo(0.2, 12);
    expect(pm.otm[2].iv).toBeCloseTo(0.18, 12);
    expect(am.years).toBeCloseTo(yearsToExpiry(MONTHLY, NOW, true), 15);
    expect(pm.years).toBeCloseTo(yearsToExpiry(MONTHLY, NOW), 15);
    expect(pm.years - am.years).toBeCloseTo(6.5 / 24 / 365, 12);

    const term = termStructure(smiles, 6000);
    expect(term.map((p) => [p.series, p.iv])).toEqual([
      ["2026-12-18-am", am.otm[2].iv],
      ["2026-12-18", pm.otm[2].iv],
    ]);
    const grid = buildSurface(smiles, 6000, { lower: 0.95, upper: 1.05, points: 3 });
    expect(grid.series).toEqual(["2026-12-18-am", "2026-12-18"]);
    expect(grid.y[1] - grid.y[0]).toBeCloseTo(6.5 / 24, 9);
    expect(grid.z[0][1]).toBeCloseTo(0.2, 12);
    expect(grid.z[1][1]).toBeCloseTo(0.18, 12);
  });

  it("drop the a.m. series once the opening has passed on expiration day", () => {
    const expirationDay = Date.UTC(2026, 11, 18, 15); // 10:00 New York
    const smiles = buildSmiles(spxRows(), 6000, expirationDay);
    expect(smiles.map((s) => s.series)).toEqual(["2026-12-18"]);
  });
});
