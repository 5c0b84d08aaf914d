/** The little of plotly.js that the UI calls (the gl3d partial bundle ships no types). */
declare module "plotly.js-gl3d-dist-min" {
  export type Data = Record<string, unknown>;
  export type Layout = Record<string, unknown>;
  export type Config = Record<string, unknown>;
  export interface PlotlyStatic {
    react(root: HTMLElement, data: Data[], layout?: Layout, config?: Config): Promise<HTMLElement>;
    purge(root: HTMLElement): void;
    Plots: { resize(root: HTMLElement): void };
  }
  const Plotly: PlotlyStatic;
  export default Plotly;
}
