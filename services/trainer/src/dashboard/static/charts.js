// The run's charts: one uPlot chart per quantity (uPlot is the global the trainer serves from
// node_modules/uplot/dist/uPlot.iife.min.js), each inside a <figure> with a caption, an aria
// description and, beside the charts, a table of the latest values as their text alternative.

/** Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. */
const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];

/** @param {number|null|undefined} v */
const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * The per-step charts. `series` are the curves (a getter over a step's `metrics` and `phasesMs`);
 * `algorithms` names the algorithms that report the chart's metric, for the note an empty chart shows
 * (services/trainer/src/runs/run-loop.ts and runs/algorithms/ emit them).
 */
export const STEP_CHARTS = [
  {
    id: "reward",
    title: "Reward (mean ± std)",
    unit: "reward",
    algorithms: "grpo, online_dpo, rloo",
    series: [
      { label: "reward mean", get: (s) => s.metrics.reward_mean },
      {
        label: "mean + std",
        dash: [6, 4],
        get: (s) => add(s.metrics.reward_mean, s.metrics.reward_std),
      },
      {
        label: "mean − std",
        dash: [6, 4],
        get: (s) => add(s.metrics.reward_mean, neg(s.metrics.reward_std)),
      },
    ],
  },
  {
    id: "kl",
    title: "KL to the base (k3 estimate)",
    unit: "nats",
    algorithms: "grpo",
    note: (config) =>
      config?.algorithm?.name === "grpo" && config.algorithm.beta === 0
        ? "beta = 0: no reference pass, so the trainer reports kl as 0 (not measured)."
        : null,
    series: [{ label: "kl", get: (s) => s.metrics.kl }],
  },
  { id: "loss", title: "Loss", unit: "loss", series: [{ label: "loss", get: (s) => s.metrics.loss }] },
  {
    id: "clip",
    title: "Clip fraction",
    unit: "fraction",
    algorithms: "grpo",
    note: (config) =>
      config?.algorithm?.name === "grpo" && (config.algorithm.numIterations ?? 1) === 1
        ? "numIterations = 1: each step's policy is its own old policy, so nothing is clipped (as in TRL)."
        : null,
    series: [{ label: "clip fraction", get: (s) => s.metrics.clip_fraction }],
  },
  {
    id: "grad-norm",
    title: "Gradient norm (before clipping)",
    unit: "norm",
    series: [{ label: "grad norm", get: (s) => s.metrics.grad_norm }],
  },
  {
    id: "tokens",
    title: "Training throughput",
    unit: "tokens/s",
    series: [{ label: "tokens/s", get: (s) => s.metrics.tokens_per_second }],
  },
  {
    id: "preference",
    title: "Preference accuracy and margin",
    unit: "value",
    algorithms: "online_dpo",
    series: [
      { label: "accuracy", get: (s) => s.metrics.accuracy },
      { label: "margin", get: (s) => s.metrics.margin },
    ],
  },
  {
    id: "staleness",
    title: "Rollout staleness",
    unit: "steps",
    algorithms: "grpo, online_dpo, rloo (sft trains on the dataset: always 0)",
    series: [
      { label: "staleness (steps)", get: (s) => s.metrics.staleness },
      // sft samples nothing: it has no sampled version (the line is left out for it).
      {
        label: "sampled version",
        get: (s) => s.metrics.version,
        scale: "version",
        algorithms: "grpo, online_dpo, rloo",
      },
    ],
  },
];

/** @param {number|null|undefined} a @param {number|null|undefined} b */
function add(a, b) {
  const x = finite(a);
  const y = finite(b);
  return x === null || y === null ? null : x + y;
}
/** @param {number|null|undefined} a */
function neg(a) {
  const x = finite(a);
  return x === null ? null : -x;
}

/**
 * The series of `def` that `algorithm` reports: a series naming `algorithms` is left out for any
 * other (known) algorithm.
 */
export function seriesFor(def, algorithm) {
  return def.series.filter(
    (s) => s.algorithms === undefined || algorithm === "" || s.algorithms.includes(algorithm),
  );
}

/** The phases chart's series: one line per phase name the history holds, in first-seen order. */
export function phaseSeries(history) {
  const names = [];
  for (const [, s] of history.sortedSteps()) {
    for (const name of Object.keys(s.phasesMs)) if (!names.includes(name)) names.push(name);
  }
  return names.map((name) => ({ label: `${name} (ms)`, get: (s) => s.phasesMs[name] }));
}

/** One chart on the page: a figure with its caption, its uPlot instance and its aria description. */
export class Chart {
  /**
   * @param {HTMLElement} parent where the figure goes
   * @param {{id: string, title: string, unit: string, algorithms?: string, xLabel?: string, note?: (config: any) => string|null}} def
   */
  constructor(parent, def) {
    this.def = def;
    this.figure = document.createElement("figure");
    this.figure.className = "chart";
    this.figure.id = `chart-${def.id}`;
    const caption = document.createElement("figcaption");
    caption.id = `chart-${def.id}-caption`;
    caption.textContent = def.title;
    this.plotBox = document.createElement("div");
    this.plotBox.className = "plot";
    this.plotBox.setAttribute("role", "img");
    this.plotBox.setAttribute("aria-labelledby", caption.id);
    this.plotBox.setAttribute("aria-describedby", `chart-${def.id}-desc`);
    this.note = document.createElement("p");
    this.note.className = "note";
    this.note.id = `chart-${def.id}-desc`;
    this.figure.append(caption, this.plotBox, this.note);
    parent.append(this.figure);
    /** @type {any} */
    this.plot = null;
    this.seriesKey = "";
  }

  /**
   * Draws `data` (uPlot columns: x values, then one column per series), rebuilding the uPlot chart
   * when the series changed, and updates the description: points, latest values, or why it is empty.
   * @param {{label: string, dash?: number[], scale?: string}[]} series
   * @param {(number|null)[][]} data
   * @param {any} config the run's config as GET /v1/runs shows it (null when unknown), for the notes
   */
  draw(series, data, config) {
    const key = series.map((s) => s.label).join("|");
    const width = Math.max(240, this.figure.clientWidth - 16);
    if (this.plot === null || key !== this.seriesKey) {
      this.plot?.destroy();
      this.seriesKey = key;
      this.plot = new globalThis.uPlot(this.options(series, width), data, this.plotBox);
    } else {
      this.plot.setData(data);
      if (Math.abs(this.plot.width - width) > 2) this.plot.setSize({ width, height: 180 });
    }
    const xs = data[0] ?? [];
    const points = xs.filter((_, i) => data.slice(1).some((col) => col[i] !== null)).length;
    this.figure.dataset.points = String(points);
    const algorithm = String(config?.algorithm?.name ?? "");
    // A chart of what this run's algorithm never reports would be an empty frame: hidden.
    this.figure.hidden = points === 0 && this.notReportedBy(algorithm);
    const extra = this.def.note?.(config) ?? null;
    const text = describe(this.def, series, data, points, algorithm);
    this.note.textContent = extra === null ? text : `${text} ${extra}`;
  }

  /** Whether `algorithm` (known) is not among those that report this chart's quantity. */
  notReportedBy(algorithm) {
    return this.def.algorithms !== undefined && algorithm !== "" && !this.def.algorithms.includes(algorithm);
  }

  options(series, width) {
    // A constant series (kl = 0) gets a unit range around it, not uPlot's default 0..100.
    const range = (_u, min, max) =>
      min === max ? [min - 1, max + 1] : globalThis.uPlot.rangeNum(min, max, 0.1, true);
    const scales = { x: { time: false }, y: { range } };
    // Steps and versions are whole numbers: no ticks between them.
    const incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000];
    const axes = [
      { label: this.def.xLabel ?? "step", incrs },
      { label: this.def.unit, size: 60 },
    ];
    if (series.some((s) => s.scale === "version")) {
      scales.version = { auto: true };
      axes.push({ scale: "version", label: "version", side: 1, grid: { show: false } });
    }
    return {
      width,
      height: 180,
      scales,
      axes,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: this.def.xLabel ?? "step" },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLOURS[i % COLOURS.length],
          width: 2,
          dash: s.dash,
          scale: s.scale ?? "y",
          spanGaps: false,
        })),
      ],
    };
  }
}

/** The chart's text description: its points and latest values, or why it has none. */
function describe(def, series, data, points, algorithm) {
  if (points === 0) {
    if (def.algorithms !== undefined && algorithm !== "" && !def.algorithms.includes(algorithm)) {
      return `No data: ${algorithm} does not report this (only ${def.algorithms}).`;
    }
    return "No data yet.";
  }
  const xs = data[0] ?? [];
  const last = xs.length - 1;
  const values = series.map((s, i) => `${s.label} ${format(data[i + 1]?.[last] ?? null)}`).join(", ");
  return `${points} points; at ${def.xLabel ?? "step"} ${xs[last]}: ${values}.`;
}

/** A number for people: 4 significant digits, or "–" for none. */
export function format(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}
