/**
 * Volatility views of one underlying, from the live chain: the 3D surface (expiry x moneyness
 * or strike), the smile of one expiry and the ATM term structure. The figures are rebuilt at
 * most once per second (REPLOT_MS) and only when the chain or the spot changed.
 */

import type { Data, Layout } from "plotly.js-gl3d-dist-min";
import { useEffect, useMemo, useState } from "react";
import type { MarketHub } from "../hub";
import { useStoreVersion, useTopic } from "../hooks";
import { formatFixed } from "../model/format";
import { formatSeries } from "../model/series";
import {
  buildSmiles,
  buildSurface,
  type Smile,
  type SurfaceAxis,
  type SurfaceGrid,
  type TermPoint,
  termStructure,
} from "../model/surface";
import type { ContractRow } from "../model/types";
import type { Route } from "../route";
import { Plot } from "./Plot";

const REPLOT_MS = 1000;

const THEME = {
  paper: "#0d1117",
  panel: "#11161d",
  grid: "#1e2630",
  text: "#8b97a6",
  bright: "#d7dee7",
  call: "#3fb68b",
  put: "#ef5a5a",
  line: "#e0b341",
  band: "rgba(224, 179, 65, 0.16)",
  font: 'ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif',
};

/** Low vols deep blue, through teal and amber, to red. */
const VOL_SCALE = [
  [0, "#1a2f6b"],
  [0.25, "#1f6f9c"],
  [0.5, "#23a39a"],
  [0.75, "#e0b341"],
  [1, "#e4572e"],
];

/** Log-scaled days with the tenors a desk names (plotly's own log ticks read "2, 5"). */
const DAY_TICKS = {
  type: "log",
  tickvals: [1, 7, 30, 91, 182, 365, 730],
  ticktext: ["1d", "1w", "1m", "3m", "6m", "1y", "2y"],
};

interface Figures {
  spot: number;
  smiles: Smile[];
  surface: SurfaceGrid;
  term: TermPoint[];
  at: number;
}

interface SurfaceViewProps {
  hub: MarketHub;
  route: Route & { symbol: string };
  navigate: (route: Route, replace?: boolean) => void;
}

export function SurfaceView({ hub, route, navigate }: SurfaceViewProps) {
  const symbol = route.symbol;
  const store = useTopic<ContractRow>(hub, `chain:${symbol}`);
  useStoreVersion(store, REPLOT_MS);
  const [axis, setAxis] = useState<SurfaceAxis>("moneyness");
  const [figures, setFigures] = useState<Figures | null>(null);

  useEffect(() => {
    let builtVersion = -1;
    let builtSpot: number | null = null;
    const build = () => {
      const spot = store.underlying?.spot ?? null;
      if (!store.loaded || spot === null) return;
      if (store.version === builtVersion && spot === builtSpot) return;
      builtVersion = store.version;
      builtSpot = spot;
      const now = Date.now();
      const smiles = buildSmiles(store.rows.values(), spot, now);
      setFigures({
        spot,
        smiles,
        surface: buildSurface(smiles, spot, { axis }),
        term: termStructure(smiles, spot),
        at: now,
      });
    };
    setFigures(null);
    build();
    const timer = setInterval(build, REPLOT_MS);
    // The first snapshot is drawn at once; later changes wait for the timer.
    const unsubscribe = store.subscribe(() => builtVersion < 0 && build());
    return () => {
      clearInterval(timer);
      unsubscribe();
    };
  }, [store, axis]);

  // route.expiry is a series key (the date, `-am` for an a.m.-settled series).
  const smileSeries = figures?.smiles.map((s) => s.series) ?? [];
  const smileExpiry =
    route.expiry && smileSeries.includes(route.expiry)
      ? route.expiry
      : (pickDefaultSmile(figures?.smiles ?? []) ?? null);
  const smile = figures?.smiles.find((s) => s.series === smileExpiry) ?? null;

  const surfaceFigure = useMemo(
    () => (figures ? surfacePlot(symbol, figures.surface) : null),
    [figures, symbol],
  );
  const smileFigure = useMemo(
    () => (figures && smile ? smilePlot(smile, figures.spot, axis) : null),
    [figures, smile, axis],
  );
  const termFigure = useMemo(
    () => (figures ? termPlot(figures.term, smileExpiry) : null),
    [figures, smileExpiry],
  );

  if (store.error) {
    return <div className="message error">{store.error}</div>;
  }
  return (
    <section className="surface-view">
      <div className="subbar">
        <div className="quote">
          <span className="quote-symbol">{symbol}</span>
          <span className="quote-spot num">
            {formatFixed(store.underlying?.spot ?? null, 2)}
          </span>
        </div>
        <div className="segmented" role="group" aria-label="Surface axis">
          {(["moneyness", "strike"] as const).map((a) => (
            <button
              type="button"
              key={a}
              className={a === axis ? "active" : ""}
              onClick={() => setAxis(a)}
            >
              {a === "moneyness" ? "Moneyness" : "Strike"}
            </button>
          ))}
        </div>
        <div className="subbar-info num" data-testid="surface-info">
          {figures
            ? `${figures.surface.series.length} expiries · ${figures.surface.x.length} points · ${new Date(figures.at).toLocaleTimeString("en-US", { hour12: false })}`
            : store.loaded
              ? "waiting for implied vols…"
              : `loading ${symbol} chain…`}
        </div>
      </div>
      <div className="surface-panels">
        <div className="panel panel-surface">
          <div className="panel-head">
            <span className="panel-title">Implied vol surface</span>
            <span className="panel-note">
              out-of-the-money mid vols by {axis === "moneyness" ? "moneyness K/S" : "strike"}{" "}
              and expiry
            </span>
          </div>
          {surfaceFigure && figures && figures.surface.z.length > 0 ? (
            <Plot testId="surface-plot" {...surfaceFigure} />
          ) : (
            <div className="message">{figures ? "No implied vols yet." : "Loading…"}</div>
          )}
        </div>
        <div className="panel panel-smile">
          <div className="panel-head">
            <span className="panel-title">Smile</span>
            <select
              aria-label="Smile expiry"
              value={smileExpiry ?? ""}
              onChange={(event) => navigate({ ...route, expiry: event.target.value }, true)}
            >
              {smileSeries.map((key) => (
                <option key={key} value={key}>
                  {formatSeries(key)}
                </option>
              ))}
            </select>
          </div>
          {smileFigure ? (
            <Plot testId="smile-plot" {...smileFigure} />
          ) : (
            <div className="message">No smile yet.</div>
          )}
        </div>
        <div className="panel panel-term">
          <div className="panel-head">
            <span className="panel-title">ATM term structure</span>
            <span className="panel-note">click an expiry to see its smile</span>
          </div>
          {termFigure && figures && figures.term.length > 0 ? (
            <Plot
              testId="term-plot"
              {...termFigure}
              onClick={(point) => {
                // Clicking an expiry on the term structure shows its smile.
                if (typeof point.customdata === "string") {
                  navigate({ ...route, expiry: point.customdata }, true);
                }
              }}
            />
          ) : (
            <div className="message">No term structure yet.</div>
          )}
        </div>
      </div>
    </section>
  );
}

/** The first series at least a week out with a full smile (the front weekly is noisy). */
function pickDefaultSmile(smiles: readonly Smile[]): string | undefined {
  const full = smiles.filter((s) => s.otm.length >= 5);
  return (full.find((s) => s.years * 365 >= 7) ?? full[0] ?? smiles[0])?.series;
}

function axisStyle(title: string): Record<string, unknown> {
  return {
    title: { text: title, font: { size: 11, color: THEME.text } },
    gridcolor: THEME.grid,
    zerolinecolor: THEME.grid,
    linecolor: THEME.grid,
    tickfont: { size: 10, color: THEME.text },
    color: THEME.text,
  };
}

function baseLayout(): Layout {
  return {
    paper_bgcolor: THEME.paper,
    plot_bgcolor: THEME.paper,
    font: { family: THEME.font, size: 11, color: THEME.text },
    autosize: true,
    showlegend: false,
    hoverlabel: { bgcolor: "#1b222c", bordercolor: "#2c3642", font: { color: THEME.bright } },
    modebar: { bgcolor: "rgba(0, 0, 0, 0)", color: "#4b5563", activecolor: THEME.bright },
  };
}

function surfacePlot(symbol: string, grid: SurfaceGrid): { data: Data[]; layout: Layout } {
  const byMoneyness = grid.axis === "moneyness";
  const z = grid.z.map((row) => row.map((v) => (v === null ? null : v * 100)));
  const sceneAxis = (title: string) => ({
    ...axisStyle(title),
    backgroundcolor: THEME.panel,
    showbackground: true,
    showspikes: false,
  });
  return {
    data: [
      {
        type: "surface",
        x: grid.x,
        y: grid.y,
        z,
        text: grid.z.map(() => grid.x.map(() => "")),
        customdata: grid.series.map((key) => grid.x.map(() => formatSeries(key))),
        colorscale: VOL_SCALE,
        connectgaps: false,
        colorbar: {
          title: { text: "IV %", font: { size: 10, color: THEME.text } },
          thickness: 8,
          len: 0.55,
          x: 0.97,
          outlinewidth: 0,
          tickfont: { size: 10, color: THEME.text },
        },
        contours: {
          z: { show: true, usecolormap: true, width: 1, project: { z: false } },
        },
        lighting: { ambient: 0.8, diffuse: 0.5, specular: 0.05, roughness: 0.9, fresnel: 0.1 },
        hovertemplate: `${byMoneyness ? "K/S %{x:.3f}" : "K %{x:.2f}"}<br>%{customdata} (%{y:.1f}d)<br>IV %{z:.2f}%<extra></extra>`,
      },
    ],
    layout: {
      ...baseLayout(),
      uirevision: `surface:${symbol}:${grid.axis}`,
      margin: { l: 0, r: 0, t: 0, b: 0 },
      scene: {
        xaxis: {
          ...sceneAxis(byMoneyness ? "Moneyness K/S" : "Strike"),
          ...(byMoneyness ? { dtick: 0.05 } : {}),
        },
        yaxis: { ...sceneAxis("Time to expiry"), ...DAY_TICKS },
        zaxis: sceneAxis("IV %"),
        camera: { eye: { x: 1.3, y: -2.05, z: 0.8 }, center: { x: 0.04, y: 0, z: -0.12 } },
        domain: { x: [0.02, 0.94], y: [0, 1] },
        aspectmode: "manual",
        aspectratio: { x: 1.25, y: 1.25, z: 0.7 },
        bgcolor: THEME.paper,
      },
    },
  };
}

function smilePlot(smile: Smile, spot: number, axis: SurfaceAxis): { data: Data[]; layout: Layout } {
  const byMoneyness = axis === "moneyness";
  const points = smile.otm;
  const x = points.map((p) => (byMoneyness ? p.moneyness : p.strike));
  const percent = (v: number | null) => (v === null ? null : v * 100);
  const spotX = byMoneyness ? 1 : spot;
  const all = points.flatMap((p) => [p.iv, p.ivBid ?? p.iv, p.ivAsk ?? p.iv]).map((v) => v * 100);
  const low = Math.min(...all);
  const high = Math.max(...all);
  const pad = Math.max(0.5, (high - low) * 0.06);
  const where = byMoneyness ? "K/S %{x:.3f}" : "K %{x:.2f}";
  return {
    data: [
      {
        // The bid-ask vol band: the ask line, then the bid line filled up to it.
        type: "scatter",
        mode: "lines",
        name: "Ask vol",
        x,
        y: points.map((p) => percent(p.ivAsk)),
        line: { width: 0, color: THEME.band },
        connectgaps: true,
        hoverinfo: "skip",
      },
      {
        type: "scatter",
        mode: "lines",
        name: "Bid vol",
        x,
        y: points.map((p) => percent(p.ivBid)),
        line: { width: 0, color: THEME.band },
        fill: "tonexty",
        fillcolor: THEME.band,
        connectgaps: true,
        hoverinfo: "skip",
      },
      {
        type: "scatter",
        mode: "lines+markers",
        name: "Mid vol",
        x,
        y: points.map((p) => p.iv * 100),
        customdata: points.map((p) => [
          p.strike < spot ? "Put" : "Call",
          percent(p.ivBid) ?? Number.NaN,
          percent(p.ivAsk) ?? Number.NaN,
        ]),
        line: { color: THEME.line, width: 1.5 },
        marker: {
          size: 4,
          color: points.map((p) => (p.strike < spot ? THEME.put : THEME.call)),
        },
        hovertemplate: `%{customdata[0]} ${where}<br>IV %{y:.2f}%  (bid %{customdata[1]:.2f} / ask %{customdata[2]:.2f})<extra></extra>`,
      },
    ],
    layout: {
      ...baseLayout(),
      uirevision: `smile:${smile.series}:${axis}`,
      margin: { l: 44, r: 12, t: 18, b: 34 },
      xaxis: axisStyle(byMoneyness ? "Moneyness K/S" : "Strike"),
      yaxis: { ...axisStyle("IV %"), range: [Math.max(0, low - pad), high + pad] },
      shapes: [
        {
          type: "line",
          xref: "x",
          yref: "paper",
          x0: spotX,
          x1: spotX,
          y0: 0,
          y1: 1,
          line: { color: "#5b6b7d", width: 1, dash: "dot" },
        },
      ],
      annotations: [
        {
          xref: "x",
          yref: "paper",
          x: spotX,
          y: 1,
          yanchor: "bottom",
          showarrow: false,
          text: "spot",
          font: { size: 9, color: THEME.text },
        },
      ],
    },
  };
}

function termPlot(term: readonly TermPoint[], selected: string | null): { data: Data[]; layout: Layout } {
  return {
    data: [
      {
        type: "scatter",
        mode: "lines+markers",
        x: term.map((p) => p.days),
        y: term.map((p) => p.iv * 100),
        customdata: term.map((p) => p.series),
        text: term.map((p) => formatSeries(p.series)),
        line: { color: THEME.line, width: 1.5 },
        marker: {
          size: term.map((p) => (p.series === selected ? 9 : 5)),
          color: term.map((p) => (p.series === selected ? THEME.bright : THEME.line)),
        },
        hovertemplate: "%{text} (%{x:.1f}d)<br>ATM IV %{y:.2f}%<extra></extra>",
      },
    ],
    layout: {
      ...baseLayout(),
      uirevision: "term",
      margin: { l: 44, r: 12, t: 8, b: 34 },
      xaxis: { ...axisStyle("Time to expiry"), ...DAY_TICKS },
      yaxis: axisStyle("ATM IV %"),
    },
  };
}
