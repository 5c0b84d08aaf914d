/**
 * A plotly.js chart. plotly (the gl3d partial bundle: surface, scatter3d, scatter) is loaded on
 * first use as its own chunk, so the chain view never pays for it. `Plotly.react` diffs against
 * the previous figure; a constant `uirevision` in the layout keeps the user's zoom and camera.
 */

import type { Config, Data, Layout, PlotlyStatic } from "plotly.js-gl3d-dist-min";
import { useEffect, useRef, useState } from "react";

/** plotly adds an event emitter to the elements it draws into. */
interface PlotlyEvents {
  on?: (event: string, handler: (event: { points?: PlotPoint[] }) => void) => void;
}

let plotlyPromise: Promise<PlotlyStatic> | null = null;

function loadPlotly(): Promise<PlotlyStatic> {
  plotlyPromise ??= import("plotly.js-gl3d-dist-min").then(
    (module) => (module as unknown as { default: PlotlyStatic }).default ?? module,
  );
  return plotlyPromise;
}

const CONFIG: Config = {
  displaylogo: false,
  responsive: false,
  modeBarButtonsToRemove: ["toImage", "sendDataToCloud", "lasso2d", "select2d"],
};

/** The clicked point: its trace, its index in the trace and its customdata. */
export interface PlotPoint {
  curveNumber: number;
  pointNumber: number;
  customdata?: unknown;
}

interface PlotProps {
  data: Data[];
  layout: Layout;
  className?: string;
  testId?: string;
  onClick?: (point: PlotPoint) => void;
}

export function Plot({ data, layout, className, testId, onClick }: PlotProps) {
  const ref = useRef<HTMLDivElement>(null);
  const [plotly, setPlotly] = useState<PlotlyStatic | null>(null);
  const [error, setError] = useState<string | null>(null);
  const clickRef = useRef(onClick);
  clickRef.current = onClick;

  useEffect(() => {
    let live = true;
    loadPlotly().then(
      (p) => live && setPlotly(p),
      (e) => live && setError(String(e)),
    );
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    const element = ref.current as (HTMLDivElement & PlotlyEvents) | null;
    if (plotly === null || element === null) return;
    plotly
      .react(element, data, layout, CONFIG)
      .then(() => {
        if (element.dataset.clickBound) return;
        element.dataset.clickBound = "1";
        element.on?.("plotly_click", (event: { points?: PlotPoint[] }) => {
          const point = event.points?.[0];
          if (point) clickRef.current?.(point);
        });
      })
      .catch((e) => setError(String(e)));
  }, [plotly, data, layout]);

  useEffect(() => {
    const element = ref.current;
    if (plotly === null || element === null) return;
    const observer = new ResizeObserver(() => plotly.Plots.resize(element));
    observer.observe(element);
    return () => {
      observer.disconnect();
      plotly.purge(element);
    };
  }, [plotly]);

  return (
    <div className={`plot ${className ?? ""}`} data-testid={testId}>
      {error ? <div className="message error">{error}</div> : null}
      <div ref={ref} className="plot-area" />
    </div>
  );
}
