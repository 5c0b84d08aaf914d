import { describe, expect, it } from "vitest";
import { formatCount, formatExpiry, formatFixed, formatStrike, formatVol } from "../src/model/format";
import { parseRoute, routePath } from "../src/route";

describe("routes", () => {
  it("parses deep links", () => {
    expect(parseRoute("/chain/spy")).toEqual({ view: "chain", symbol: "SPY", expiry: null });
    expect(parseRoute("/surface/QQQ", "?expiry=2026-12-18")).toEqual({
      view: "surface",
      symbol: "QQQ",
      expiry: "2026-12-18",
    });
    expect(parseRoute("/")).toEqual({ view: "chain", symbol: null, expiry: null });
    expect(parseRoute("/nonsense/SPY", "?expiry=12/18")).toEqual({
      view: "chain",
      symbol: "SPY",
      expiry: null,
    });
  });

  it("round-trips", () => {
    for (const path of ["/chain/SPY", "/surface/SPX?expiry=2026-12-18"]) {
      const [pathname, search] = path.split("?");
      expect(routePath(parseRoute(pathname, search ? `?${search}` : ""))).toBe(path);
    }
  });
});

describe("formats", () => {
  it("formats numbers for the grid", () => {
    expect(formatFixed(1.005, 2)).toBe("1.01");
    expect(formatFixed(null, 2)).toBe("–");
    expect(formatFixed(Number.NaN, 2)).toBe("–");
    expect(formatVol(0.18345)).toBe("18.3");
    expect(formatCount(12345)).toBe("12,345");
    expect(formatCount(123456)).toBe("123k");
    expect(formatCount(1234567)).toBe("1.2M");
    expect(formatStrike(585)).toBe("585");
    expect(formatStrike(582.5)).toBe("582.5");
    expect(formatStrike(3.75)).toBe("3.75");
    expect(formatExpiry("2026-12-18")).toBe("Dec 18 '26");
  });
});
