// The fleet panel: each generator's active and staged versions of the selected run, publish → active
// latency per version, and failures with their reasons. Reads GET /v1/fleet?run= (the trainer asks
// each generator's GET /v1/adapters) and GET /v1/runs/:run/versions (each version's createdAt).

import { Chart, format } from "./charts.js";
import { activation } from "./latency.js";

/** The latency chart keeps the points of at most this many versions (the newest) while the page is open. */
const MAX_LATENCY_VERSIONS = 500;

/** The rows of one version state, as "v3, v4". */
const versionsIn = (rows, state) =>
  rows
    .filter((r) => r.state === state)
    .map((r) => `v${r.version}`)
    .join(", ");

/** A generator's name for people: its host and port. */
function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The fleet section of the page. */
export class FleetPanel {
  /**
   * @param {HTMLElement} root the section's body
   * @param {(path: string) => Promise<any>} api GET a trainer path as JSON (with the token)
   */
  constructor(root, api) {
    this.api = api;
    this.table = root.querySelector("#fleet-table tbody");
    this.caption = root.querySelector("#fleet-table caption");
    this.failures = root.querySelector("#fleet-failures");
    this.latency = new Chart(root.querySelector("#fleet-charts"), {
      id: "latency",
      title: "Publish → active latency per version (ms; trainer and generator clocks)",
      unit: "ms",
      xLabel: "version",
      note: () =>
        "Handoffs only: a version published while the generator ran, from its manifest's createdAt to its activation. " +
        "Activations at a generator's start-up (that would be its downtime) and rollbacks are not plotted; " +
        "points stay while this page is open, after the generators stop listing their versions.",
    });
    /** @type {Map<string, Map<number, number>>} generator → version → handoff ms, seen while open */
    this.points = new Map();
    /** @type {Map<number, number>} version → createdAt, epoch ms */
    this.createdAt = new Map();
    this.run = null;
    this.history = null;
    this.versionsReadAt = 0;
  }

  /** Follows another run: forgets the previous one's versions. */
  setRun(run, history) {
    this.run = run;
    this.history = history;
    this.createdAt.clear();
    this.points.clear();
    this.versionsReadAt = 0;
    this.table.replaceChildren();
    this.failures.replaceChildren();
  }

  /** Reads the fleet (and new versions' publish times) and redraws. Throws what `api` throws. */
  async refresh() {
    const run = this.run;
    if (run === null) return;
    const newest = this.history?.newestVersion() ?? null;
    const missing = newest !== null && !this.createdAt.has(newest);
    if (missing && Date.now() - this.versionsReadAt > 2000) {
      this.versionsReadAt = Date.now();
      const v = await this.api(`/v1/runs/${encodeURIComponent(run)}/versions`);
      for (const row of v.versions) {
        if (row.createdAt !== null) this.createdAt.set(row.version, Date.parse(row.createdAt));
      }
    }
    const fleet = await this.api(`/v1/fleet?run=${encodeURIComponent(run)}`);
    if (run !== this.run) return;
    this.render(run, fleet);
  }

  render(run, fleet) {
    this.caption.textContent = `Generators serving ${run} (checked ${new Date(fleet.checkedAt).toLocaleTimeString()})`;
    const rows = [];
    const problems = [];
    for (const g of fleet.generators) {
      const name = hostOf(g.url);
      const active = g.active[run]?.version ?? null;
      const tr = document.createElement("tr");
      tr.dataset.generator = g.url;
      tr.dataset.active = active === null ? "" : String(active);
      tr.dataset.reach = g.reach;
      const activeRow = g.versions.find((r) => r.version === active);
      const how = activeRow === undefined ? null : this.activationOf(activeRow, g);
      const failed = g.versions.filter((r) => r.state === "failed");
      const cells = [
        name,
        g.reach === "ok" ? "yes" : `no (${g.reach})`,
        active === null ? "–" : `v${active}`,
        versionsIn(g.versions, "staged") || "–",
        how === null ? "–" : how.kind === "handoff" ? `${format(how.ms)} ms` : `at ${how.kind}`,
        String(failed.length),
      ];
      for (const [i, text] of cells.entries()) {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        cell.textContent = text;
        tr.append(cell);
      }
      rows.push(tr);
      if (g.reach !== "ok") problems.push(`${name}: ${g.reach}: ${g.error}`);
      for (const r of failed)
        problems.push(`${name}: v${r.version} failed: ${r.reason ?? "no reason given"}`);
      const series = this.points.get(name) ?? new Map();
      this.points.set(name, series);
      for (const r of g.versions) {
        const a = this.activationOf(r, g);
        if (a?.kind === "handoff") series.set(r.version, a.ms);
      }
    }
    if (fleet.omitted > 0) problems.push(`${fleet.omitted} more generators not asked (the view's bound)`);
    this.table.replaceChildren(...rows);
    this.failures.replaceChildren(
      ...(problems.length === 0 ? ["none"] : problems).map((text) => {
        const li = document.createElement("li");
        li.textContent = text;
        return li;
      }),
    );
    const xs = [...new Set([...this.points.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
    for (const old of xs.splice(0, Math.max(0, xs.length - MAX_LATENCY_VERSIONS))) {
      for (const m of this.points.values()) m.delete(old);
    }
    const names = [...this.points.keys()];
    this.latency.draw(
      names.map((label) => ({ label })),
      [xs, ...names.map((n) => xs.map((v) => this.points.get(n)?.get(v) ?? null))],
      null,
    );
  }

  /** How generator `g` activated version `row` (latency.js), from the version's publish time. */
  activationOf(row, g) {
    return activation(row, this.createdAt.get(row.version), g.startedAt ?? null);
  }
}
