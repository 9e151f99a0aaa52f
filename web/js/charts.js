// Line charts with uPlot (vendor/uplot, MIT, ~50 KB), loaded only when the console is opened.

import { put } from "./dom.js";

let loading = null;

export function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = "vendor/uplot/uPlot.min.css";
      put(document.head, css);
      const script = document.createElement("script");
      script.src = "vendor/uplot/uPlot.iife.min.js";
      script.onload = () => resolve(window.uPlot);
      script.onerror = () => reject(new Error("vendor/uplot/uPlot.iife.min.js did not load"));
      put(document.head, script);
    });
  }
  return loading;
}

const COLOURS = ["#3446c9", "#1d8a4a", "#c0392b", "#8a5300", "#7b3fb3", "#0f7c8c"];

// series: [{label, values, percent?}]; xs: epoch seconds. Returns the uPlot instance.
export async function lineChart(container, { xs, series, percent = false, seconds = false, title }) {
  const uPlot = await loadUPlot();
  const width = Math.max(260, container.clientWidth || 320);
  const format = (v) => (v === null || v === undefined ? "–"
    : percent ? `${(v * 100).toFixed(1)}%` : seconds ? `${v.toFixed(1)} s` : String(Math.round(v * 100) / 100));
  const tick = (v) => (percent ? `${Math.round(v * 100)}%` : format(v));
  const opts = {
    width,
    height: 200,
    scales: { x: { time: true }, y: percent ? { range: [0, 1] } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      { stroke: "#4f5766", grid: { stroke: "#e6e8ee" } },
      { stroke: "#4f5766", grid: { stroke: "#e6e8ee" }, values: (u, vals) => vals.map(tick), size: 50 },
    ],
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
      points: { show: percent || xs.length <= 31, size: 5 }, // a rate is null in an empty bucket: show lone points
      value: (u, v) => format(v), spanGaps: false,
    }))],
    legend: { live: true },
  };
  const chart = new uPlot(opts, [xs, ...series.map((s) => s.values)], container);
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", `${title}: ${series.map((s) => `${s.label} ${summarise(s.values, format)}`).join("; ")}`);
  return chart;
}

function summarise(values, format) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (!present.length) return "–";
  return `${format(present[present.length - 1])}`;
}
