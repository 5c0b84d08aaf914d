import { describe, expect, it } from "vitest";
import {
  atmVol,
  buildSmiles,
  buildSurface,
  calendarDaysToExpiry,
  daysToExpiry,
  expiryMs,
  fillCalendarGaps,
  interpolate,
  outOfTheMoney,
  quotable,
  surfaceRange,
  termStructure,
} from "../src/model/surface";
import { contract } from "./rows";

const NOW = Date.UTC(2026, 10, 2, 15); // 2026-11-02 15:00 UTC

describe("expiry time", () => {
  it("is 16:00 New York: 21:00 UTC in winter, 20:00 UTC in summer", () => {
    expect(new Date(expiryMs("2026-12-18")).toISOString()).toBe("2026-12-18T21:00:00.000Z");
    expect(new Date(expiryMs("2026-06-19")).toISOString()).toBe("2026-06-19T20:00:00.000Z");
    // 2026: DST from March 8 to November 1.
    expect(new Date(expiryMs("2026-03-06")).toISOString()).toBe("2026-03-06T21:00:00.000Z");
    expect(new Date(expiryMs("2026-03-09")).toISOString()).toBe("2026-03-09T20:00:00.000Z");
    expect(new Date(expiryMs("2026-10-30")).toISOString()).toBe("2026-10-30T20:00:00.000Z");
    expect(new Date(expiryMs("2026-11-02")).toISOString()).toBe("2026-11-02T21:00:00.000Z");
  });

  it("counts calendar days in New York", () => {
    expect(calendarDaysToExpiry("2026-11-02", NOW)).toBe(0);
    expect(calendarDaysToExpiry("2026-11-03", NOW)).toBe(1);
    // 23:30 New York on Nov 2 is Nov 3 in UTC, still Nov 2 in New York.
    const lateEvening = Date.UTC(2026, 10, 3, 4, 30);
    expect(calendarDaysToExpiry("2026-11-03", lateEvening)).toBe(1);
    expect(calendarDaysToExpiry("2026-11-02", lateEvening)).toBe(0);
  });

  it("counts days to the close", () => {
    expect(daysToExpiry("2026-11-02", NOW)).toBeCloseTo(0.25, 10);
    expect(daysToExpiry("2026-11-03", NOW)).toBeCloseTo(1.25, 10);
  });
});

describe("interpolate", () => {
  it("is linear inside and null outside the points", () => {
    expect(interpolate([1, 2, 4], [10, 20, 40], 3)).toBeCloseTo(30);
    expect(interpolate([1, 2, 4], [10, 20, 40], 1)).toBe(10);
    expect(interpolate([1, 2, 4], [10, 20, 40], 4)).toBe(40);
    expect(interpolate([1, 2, 4], [10, 20, 40], 0.5)).toBeNull();
    expect(interpolate([1, 2, 4], [10, 20, 40], 5)).toBeNull();
    expect(interpolate([], [], 1)).toBeNull();
  });
});

describe("smiles", () => {
  const expiry = "2026-12-18";
  const rows = [
    contract({ expiry, strike: 90, right: "P", iv: 0.3 }),
    contract({ expiry, strike: 90, right: "C", iv: 0.35 }),
    contract({ expiry, strike: 100, right: "P", iv: 0.21 }),
    contract({ expiry, strike: 100, right: "C", iv: 0.2 }),
    contract({ expiry, strike: 110, right: "P", iv: 0.19 }),
    contract({ expiry, strike: 110, right: "C", iv: 0.18 }),
    contract({ expiry, strike: 120, right: "C", iv: null }),
    contract({ expiry, strike: 120, right: "P", iv: 0.17 }),
    contract({ expiry: "2026-11-02", strike: 100, right: "C", iv: 9 }),
    contract({ expiry: "2026-11-20", strike: 100, right: "C", iv: 0.2, bid: 0 }),
    contract({ expiry: "2026-11-20", strike: 105, right: "C", iv: 0.2, bid: null }),
    contract({ expiry: "2026-11-20", strike: 110, right: "C", iv: 0.2, bid: 0.01, ask: 0.02 }),
    contract({ expiry: "2026-10-30", strike: 100, right: "C", iv: 0.2 }),
  ];

  it("groups by expiry, drops unusable vols, zero bids and past expiries", () => {
    const smiles = buildSmiles(rows, 100, NOW);
    expect(smiles.map((s) => s.expiry)).toEqual(["2026-12-18"]);
    expect(smiles[0].calls.map((p) => p.strike)).toEqual([90, 100, 110]);
    expect(smiles[0].puts.map((p) => p.strike)).toEqual([90, 100, 110, 120]);
    expect(smiles[0].years).toBeCloseTo(daysToExpiry(expiry, NOW) / 365, 12);
  });

  it("takes puts below the spot and calls at and above it", () => {
    const [smile] = buildSmiles(rows, 100, NOW);
    // No call vol at 120: a gap, not the in-the-money put.
    expect(smile.otm.map((p) => [p.strike, p.iv])).toEqual([
      [90, 0.3],
      [100, 0.2],
      [110, 0.18],
    ]);
    expect(smile.otm[1].moneyness).toBe(1);
    expect([smile.otm[1].ivBid, smile.otm[1].ivAsk]).toEqual([0.19, 0.21]);
  });

  it("reads the ATM vol at the spot", () => {
    const [smile] = buildSmiles(rows, 105, NOW);
    // otm at spot 105: 90P .30, 100P .21, 110C .18
    expect(atmVol(smile, 105)).toBeCloseTo(0.195, 12);
    expect(atmVol(smile, 115)).toBeNull();
    expect(termStructure([smile], 105)).toEqual([
      { series: expiry, expiry, days: smile.years * 365, iv: atmVol(smile, 105) },
    ]);
  });

  it("outOfTheMoney works on plain points", () => {
    const call = { strike: 100, moneyness: 1, iv: 0.2, ivBid: null, ivAsk: null };
    const put = { strike: 100, moneyness: 1, iv: 0.25, ivBid: 0.24, ivAsk: 0.26 };
    expect(outOfTheMoney([call], [put], 100)).toEqual([call]);
    expect(outOfTheMoney([call], [put], 101)).toEqual([put]);
    expect(outOfTheMoney([call], [], 101)).toEqual([]);
  });

  it("counts only narrow two-sided markets", () => {
    expect(quotable(1, 1.1)).toBe(true);
    expect(quotable(0.05, 0.07)).toBe(true);
    expect(quotable(0.01, 0.02)).toBe(false);
    expect(quotable(0, 0.05)).toBe(false);
    expect(quotable(1.2, 1.1)).toBe(false);
    expect(quotable(null, 1)).toBe(false);
  });
});

describe("buildSurface", () => {
  const rows = ["2026-11-20", "2026-12-18", "2027-01-15"].flatMap((expiry, i) =>
    [80, 90, 100, 110, 120].flatMap((strike) => [
      contract({ expiry, strike, right: "C", iv: 0.2 + 0.01 * i + (strike - 100) ** 2 * 1e-4 }),
      contract({ expiry, strike, right: "P", iv: 0.2 + 0.01 * i + (strike - 100) ** 2 * 1e-4 }),
    ]),
  );

  it("has one row per expiry and one column per moneyness step", () => {
    const smiles = buildSmiles(rows, 100, NOW);
    const grid = buildSurface(smiles, 100, { axis: "moneyness", lower: 0.7, upper: 1.3, points: 7 });
    expect(grid.series).toEqual(["2026-11-20", "2026-12-18", "2027-01-15"]);
    expect(grid.x.map((x) => Number(x.toFixed(6)))).toEqual([0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.3]);
    expect(grid.y).toEqual(smiles.map((s) => s.years * 365));
    for (let i = 0; i < 3; i++) {
      const row = grid.z[i];
      expect(row[0]).toBeNull(); // strike 70: outside the listed strikes
      expect(row[6]).toBeNull();
      expect(row[1]).toBeCloseTo(0.2 + 0.01 * i + 0.04, 12);
      expect(row[3]).toBeCloseTo(0.2 + 0.01 * i, 12);
    }
  });

  it("uses strikes as columns on the strike axis", () => {
    const smiles = buildSmiles(rows, 100, NOW);
    const grid = buildSurface(smiles, 100, { axis: "strike", lower: 0.8, upper: 1.2, points: 5 });
    expect(grid.x).toEqual([80, 90, 100, 110, 120]);
    expect(grid.z[0][2]).toBeCloseTo(0.2, 12);
  });

  it("leaves out expiries less than two days out", () => {
    const near = [90, 100, 110].map((strike) =>
      contract({ expiry: "2026-11-03", strike, right: strike < 100 ? "P" : "C", iv: 0.3 }),
    );
    const smiles = buildSmiles([...near, ...rows], 100, NOW);
    expect(smiles[0].expiry).toBe("2026-11-03");
    expect(buildSurface(smiles, 100).series).toEqual(["2026-11-20", "2026-12-18", "2027-01-15"]);
  });

  it("leaves out expiries with fewer than three vols", () => {
    const thin = [
      contract({ expiry: "2026-12-18", strike: 100, right: "C", iv: 0.2 }),
      contract({ expiry: "2026-12-18", strike: 110, right: "C", iv: 0.2 }),
    ];
    const grid = buildSurface(buildSmiles(thin, 100, NOW), 100);
    expect(grid.z).toEqual([]);
    expect(grid.series).toEqual([]);
  });
});

describe("surface range and calendar gaps", () => {
  it("spans the moneyness three quarters of the expiries quote", () => {
    const smile = (lo: number, hi: number) => ({
      series: "2026-12-18",
      expiry: "2026-12-18",
      amSettled: false,
      years: 0.1,
      calls: [],
      puts: [],
      otm: [lo, 1, hi].map((m) => ({ strike: m * 100, moneyness: m, iv: 0.2, ivBid: null, ivAsk: null })),
    });
    const range = surfaceRange([smile(0.9, 1.1), smile(0.7, 1.3), smile(0.8, 1.05)])!;
    expect(range[0]).toBeCloseTo(0.85, 12);
    expect(range[1]).toBeCloseTo(1.075, 12);
    expect(surfaceRange([smile(0.2, 3)])).toEqual([0.5, 1.5]);
    expect(surfaceRange([])).toBeNull();
  });

  it("fills interior holes in total variance and never extrapolates", () => {
    const years = [0.1, 0.2, 0.4, 0.8];
    const z: (number | null)[][] = [
      [null, 0.2],
      [0.3, null],
      [null, null],
      [0.2, 0.25],
    ];
    fillCalendarGaps(years, z);
    expect(z[0][0]).toBeNull();
    // column 0: w(0.2) = 0.018, w(0.8) = 0.032 → w(0.4) = 0.018 + 0.014 / 3
    expect(z[2][0]).toBeCloseTo(Math.sqrt((0.018 + 0.014 / 3) / 0.4), 12);
    // column 1: w(0.1) = 0.004, w(0.8) = 0.05
    const w = (t: number) => 0.004 + ((0.05 - 0.004) * (t - 0.1)) / 0.7;
    expect(z[1][1]).toBeCloseTo(Math.sqrt(w(0.2) / 0.2), 12);
    expect(z[2][1]).toBeCloseTo(Math.sqrt(w(0.4) / 0.4), 12);
  });
});
