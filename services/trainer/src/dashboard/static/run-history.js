// A run's history as the dashboard keeps it, built from the run's event stream
// (GET /v1/runs/:id/events; the event contract is shared/run-events/index.ts).

/** The history of one run: its completed steps, published versions, resumes and final status. */
export class RunHistory {
  /** @param {string} run */
  constructor(run) {
    this.run = run;
    /** The id (`seq`) of the newest event applied; events at or below it are repeats. */
    this.lastSeq = 0;
    /** @type {Map<number, {metrics: Record<string, number|null>, phasesMs: Record<string, number|null>}>} */
    this.steps = new Map();
    /** @type {{version: number, step: number, ms: number}[]} */
    this.published = [];
    /** @type {{step: number, reason: string}[]} */
    this.skipped = [];
    /** @type {{step: number, lastStep: number}[]} */
    this.resumes = [];
    /** @type {string|null} the final status (completed, failed, cancelled), null while running */
    this.status = null;
    /** @type {string|null} */
    this.error = null;
  }

  /**
   * Applies one stream event. Returns false for an event already applied: a stream reopened
   * without Last-Event-ID replays the history from seq 1.
   * @param {{seq: number, type: string} & Record<string, unknown>} e
   */
  apply(e) {
    if (typeof e.seq !== "number" || e.seq <= this.lastSeq) return false;
    this.lastSeq = e.seq;
    switch (e.type) {
      case "step":
        this.steps.set(Number(e.step), { metrics: Object(e.metrics), phasesMs: Object(e.phasesMs) });
        break;
      case "published":
        this.published.push({ version: Number(e.version), step: Number(e.step), ms: Number(e.ms) });
        break;
      case "skipped":
        this.skipped.push({ step: Number(e.step), reason: String(e.reason) });
        break;
      case "resumed":
        // The steps after the checkpoint are redone under new ids: drop the first attempt's.
        for (const s of [...this.steps.keys()]) if (s > Number(e.step)) this.steps.delete(s);
        this.resumes.push({ step: Number(e.step), lastStep: Number(e.lastStep) });
        break;
      case "status":
        this.status = String(e.status);
        this.error = e.error === null ? null : String(e.error);
        break;
      default:
        break;
    }
    return true;
  }

  /** The completed steps in order, as `[step, {metrics, phasesMs}]`. */
  sortedSteps() {
    return [...this.steps.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** The newest published version, or null before the first publish. */
  newestVersion() {
    return this.published.reduce((v, p) => Math.max(v, p.version), 0) || null;
  }

  /**
   * uPlot's columnar data for these per-step values: `[steps, ...one column per getter]`, null
   * where a step lacks the value (uPlot leaves a gap there).
   * @param {((step: {metrics: Record<string, number|null>, phasesMs: Record<string, number|null>}) => number|null|undefined)[]} getters
   */
  columns(getters) {
    const rows = this.sortedSteps();
    const xs = rows.map(([s]) => s);
    const ys = getters.map((get) =>
      rows.map(([, v]) => {
        const y = get(v);
        return typeof y === "number" && Number.isFinite(y) ? y : null;
      }),
    );
    return [xs, ...ys];
  }
}
