// The dashboard page: the run list (GET /v1/runs, with the bearer token), the selected run's curves
// from its event stream (GET /v1/runs/:id/events, SSE, public) and the fleet (fleet.js).
//
// The token: `npm start` prints a link carrying it in the URL fragment (#token=…), which the browser
// never sends to the server. The page moves it to sessionStorage (this tab only, gone when it
// closes) and drops the fragment from the address bar; without one it asks for the token.

import { Chart, format, phaseSeries, STEP_CHARTS, seriesFor } from "./charts.js";
import { FleetPanel } from "./fleet.js";
import { RunHistory } from "./run-history.js";

const TOKEN_KEY = "loracast-token";
const RUNS_EVERY_MS = 3000;
const FLEET_EVERY_MS = 2000;
const EVENT_TYPES = ["step", "published", "checkpoint", "skipped", "resumed", "stopped", "status"];

const $ = (selector) => document.querySelector(selector);
const connection = $("#connection");
/** @type {string|null} why the trainer's API cannot be used (no token, a refused one), shown in the header */
let tokenProblem = null;

class AuthError extends Error {}

/** A trainer answer other than 2xx (and 401, an AuthError): `status` is its HTTP status. */
class HttpError extends Error {
  /** @param {string} message @param {number} status */
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m === null) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

/** Shows the token form (focusing its field when it appears) with `message`, in the header too. */
function askForToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenProblem = message;
  setConnection(message);
  $("#token-message").textContent = message;
  const form = $("#token-form");
  if (form.hidden) {
    form.hidden = false;
    $("#token-input").focus();
  }
}

/** GET a trainer path as JSON, with the token; without one, or on 401, asks for it (AuthError). */
async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token === null) {
    // A form already showing keeps its message ("refused", say).
    if ($("#token-form").hidden) askForToken("The trainer needs its API token to list runs and the fleet.");
    throw new AuthError("no token");
  }
  const res = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
  if (res.status === 401) {
    askForToken("The trainer refused that token.");
    throw new AuthError("unauthorized");
  }
  if (tokenProblem !== null) {
    // The token was accepted: the header no longer says it is missing or refused.
    tokenProblem = null;
    setConnection("Connected to the trainer.");
  }
  const body = await res.json().catch(() => null);
  if (!res.ok)
    throw new HttpError(`GET ${path}: HTTP ${res.status} ${body?.error?.message ?? ""}`, res.status);
  return body;
}

const state = {
  /** @type {string|null} */ run: null,
  /** @type {RunHistory|null} */ history: null,
  /** @type {EventSource|null} */ source: null,
  /** Whether the trainer answered 404 for the selected run: its stream is not retried. */
  missing: false,
  algorithm: "",
  runs: [],
  charts: new Map(),
  redraw: 0,
};
const fleet = new FleetPanel($("#fleet-section"), api);

function setConnection(text) {
  if (connection.textContent !== text) connection.textContent = text;
}

/** @type {Map<string, {tr: HTMLTableRowElement, button: HTMLButtonElement, cells: HTMLTableCellElement[]}>} */
const runRows = new Map();

/**
 * Updates the run table in place: rows are kept per run, so a run's button keeps the keyboard focus
 * across the refreshes every few seconds.
 */
function renderRuns() {
  const order = [];
  for (const r of state.runs) {
    let row = runRows.get(r.run);
    if (row === undefined) {
      const tr = document.createElement("tr");
      tr.dataset.run = r.run;
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = r.run;
      button.addEventListener("click", () => select(r.run));
      const first = document.createElement("td");
      first.append(button);
      const cells = Array.from({ length: 5 }, () => document.createElement("td"));
      tr.append(first, ...cells);
      row = { tr, button, cells };
      runRows.set(r.run, row);
    }
    row.button.setAttribute("aria-pressed", String(r.run === state.run));
    const texts = [
      String(r.config?.algorithm?.name ?? "–"),
      r.status,
      `${r.step} / ${r.steps}`,
      r.version === null ? "–" : `v${r.version}`,
      new Date(r.createdAt).toLocaleString(),
    ];
    for (const [i, text] of texts.entries()) {
      const cell = row.cells[i];
      if (cell.textContent !== text) cell.textContent = text;
    }
    row.cells[1].className = `status-${r.status}`;
    order.push(row.tr);
  }
  const body = $("#runs-table tbody");
  // Moving a row would take the focus from its button: touch the order only when it changed.
  const same = order.length === body.children.length && order.every((tr, i) => body.children[i] === tr);
  if (!same) body.replaceChildren(...order);
}

async function refreshRuns() {
  const body = await api("/v1/runs");
  state.runs = [...body.runs].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  if (state.run === null && state.runs.length > 0) {
    const running = state.runs.find((r) => r.status === "running");
    select((running ?? state.runs[0]).run);
  }
  const info = state.runs.find((r) => r.run === state.run);
  if (info !== undefined) state.algorithm = String(info.config?.algorithm?.name ?? "");
  renderRuns();
}

/** Follows `run`: a fresh history from its event stream, and the fleet's view of it. */
function select(run) {
  if (state.run === run) return;
  state.source?.close();
  state.run = run;
  state.missing = false;
  state.history = new RunHistory(run);
  const info = state.runs.find((r) => r.run === run);
  state.algorithm = String(info?.config?.algorithm?.name ?? "");
  const url = new URL(location.href);
  url.searchParams.set("run", run);
  history.replaceState(null, "", url);
  for (const c of state.charts.values()) c.figure.remove();
  state.charts.clear();
  fleet.setRun(run, state.history);
  renderRuns();
  openStream();
  scheduleRedraw();
}

/**
 * Opens the run's event stream. EventSource reconnects by itself after a dropped connection (a
 * trainer restart) and sends Last-Event-ID, so the trainer continues after the last event seen; if
 * it gives up (CLOSED), a new one opens after 3 s and replays from the start, which the history
 * skips up to the last id it applied.
 */
function openStream() {
  const run = state.run;
  const history = state.history;
  const source = new EventSource(`/v1/runs/${encodeURIComponent(run)}/events`);
  state.source = source;
  const onEvent = (message) => {
    if (state.source !== source) return;
    const e = JSON.parse(message.data);
    if (!history.apply(e)) return;
    if (e.type === "status") {
      source.close();
      setConnection(`Run ${run} ${e.status}${e.error === null ? "" : `: ${e.error}`}.`);
    }
    scheduleRedraw();
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
  source.addEventListener("open", () => setConnection(`Live: following ${run}.`));
  source.addEventListener("error", () => {
    if (state.source !== source || history.status !== null) return;
    if (source.readyState === EventSource.CLOSED) {
      // EventSource gives up on an HTTP error without saying which: ask the trainer whether the run
      // exists, and retry only when it does (or the trainer could not say).
      setConnection(`Lost the event stream of ${run}; retrying in 3 s.`);
      void runExists(run).then((exists) => {
        if (state.source !== source) return;
        if (exists) {
          setTimeout(() => state.source === source && openStream(), 3000);
          return;
        }
        source.close();
        state.missing = true;
        setConnection(`No such run: ${run}. Choose one from the list.`);
        scheduleRedraw();
      });
    } else {
      setConnection(`Reconnecting to the trainer (run ${run}, after event ${history.lastSeq})…`);
    }
  });
}

/** False when the trainer answers 404 for `run`; true when it exists or the trainer could not say. */
async function runExists(run) {
  try {
    await api(`/v1/runs/${encodeURIComponent(run)}`);
    return true;
  } catch (e) {
    return !(e instanceof HttpError && e.status === 404);
  }
}

function scheduleRedraw() {
  if (state.redraw !== 0) return;
  // Coalesced: replaying a long history delivers hundreds of events at once.
  state.redraw = setTimeout(() => {
    state.redraw = 0;
    redraw();
  }, 100);
}

function chart(def) {
  let c = state.charts.get(def.id);
  if (c === undefined) {
    c = new Chart($("#run-charts"), def);
    state.charts.set(def.id, c);
  }
  return c;
}

function redraw() {
  const h = state.history;
  if (h === null) return;
  if (state.missing) {
    $("#run-heading").textContent = `No such run: ${h.run}`;
    $("#run-summary").textContent = "The trainer has no run of that name; choose one from the list above.";
    $("#latest-table tbody").replaceChildren();
    for (const c of state.charts.values()) c.figure.remove();
    state.charts.clear();
    return;
  }
  const defs = [
    ...STEP_CHARTS,
    { id: "phases", title: "Step time by phase", unit: "ms", series: phaseSeries(h) },
  ];
  const latest = [];
  const steps = h.sortedSteps();
  const last = steps.at(-1);
  for (const def of defs) {
    const series = seriesFor(def, state.algorithm);
    const data = h.columns(series.map((s) => s.get));
    const c = chart(def);
    c.draw(series, data, state.runs.find((r) => r.run === h.run)?.config ?? null);
    if (last === undefined || c.figure.hidden) continue;
    for (const s of series) latest.push([s.label, last[0], format(s.get(last[1]))]);
  }
  $("#run-heading").textContent = `Run ${h.run}`;
  const info = state.runs.find((r) => r.run === h.run);
  const parts = [
    state.algorithm || null,
    // The stream's final status, else the run list's; neither yet: unknown, not "running".
    h.status ?? info?.status ?? "status not known yet",
    `${steps.length} steps shown${info === undefined ? "" : ` of ${info.steps}`}`,
    h.newestVersion() === null ? "no version yet" : `newest version v${h.newestVersion()}`,
    h.resumes.length > 0 ? `resumed ${h.resumes.length}×` : null,
    h.skipped.length > 0 ? `${h.skipped.length} skipped steps` : null,
    h.error,
  ];
  $("#run-summary").textContent = parts.filter((p) => p !== null).join(" · ");
  $("#latest-table tbody").replaceChildren(
    ...latest.map((cells) => {
      const tr = document.createElement("tr");
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = String(text);
        tr.append(td);
      }
      return tr;
    }),
  );
}

/** Runs `work` now and every `ms`, reporting a failure in the status line (the token form on 401). */
function every(ms, work) {
  const tick = async () => {
    try {
      await work();
    } catch (e) {
      if (!(e instanceof AuthError)) setConnection(`Trainer unreachable: ${e.message}`);
    } finally {
      setTimeout(tick, ms);
    }
  };
  void tick();
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token-input").value);
  $("#token-input").value = "";
  $("#token-form").hidden = true;
  setConnection("Checking the token…");
});

takeTokenFromFragment();
const wanted = new URL(location.href).searchParams.get("run");
if (wanted !== null && wanted !== "") select(wanted);
every(RUNS_EVERY_MS, refreshRuns);
// A run the trainer does not have has no fleet to show (and a name the fleet view refuses, a 400).
every(FLEET_EVERY_MS, () => (state.missing ? undefined : fleet.refresh()));
addEventListener("resize", scheduleRedraw);
