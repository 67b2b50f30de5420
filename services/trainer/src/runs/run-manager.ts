/**
 * Runs over REST: validation, one active run at a time (they share the loaded base), status kept
 * on disk so a restarted trainer resumes every run that was running from its newest checkpoint,
 * and per-run event history (run-history.ts) for SSE subscribers, which survives restarts.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { EgressPolicy } from "@loracast/shared/egress";
import type { RunEvent, RunStatus, RunStreamEvent } from "@loracast/shared/run-events";
import type { RunInfo as RunInfoBody } from "@loracast/shared/trainer-api";
import { z } from "zod";
import { TrainerError } from "../errors.ts";
import { type OtlpReporter, TensorBoardReporter } from "../reporting/index.ts";
import { type RunConfig, runConfigSchema, withAbsoluteDatasetPath } from "./config.ts";
import { FleetRollouts } from "./rollouts.ts";
import { foldProgress, type HistorySummary, RunHistory } from "./run-history.ts";
import { RunLoop, type RunLoopDeps } from "./run-loop.ts";
import { planRun, type RunPlan, replanRun } from "./run-plan.ts";

/** A run as `GET /v1/runs/:id` shows it (`runInfoSchema`), with its config typed as parsed. */
export type RunInfo = Omit<RunInfoBody, "config"> & { config: RunConfig };

/**
 * The loop's dependencies, less the events the manager supplies per run, plus the
 * egress policy new configs' URLs are checked against (the loop's `fetch` applies it again).
 */
export type RunManagerDeps = Omit<RunLoopDeps, "emit"> & {
  dataDir: string;
  /**
   * TRAINER_TENSORBOARD_DIR: runs with `reportTo: ["tensorboard"]` write their event files under
   * `<tensorboardDir>/<loggingDir or run>`.
   */
  tensorboardDir: string;
  /** Where every run's scalars also go when OTLP export is on (OTEL_EXPORTER_OTLP_ENDPOINT); else null. */
  otlp: OtlpReporter | null;
  egress: EgressPolicy;
  /**
   * The trainer's working directory: a new run's relative `dataset.path` is resolved against it once,
   * when the run is accepted, and the run keeps the absolute path (config.ts `withAbsoluteDatasetPath`).
   */
  cwd: string;
  /**
   * Consecutive unclean trainer stops (crashes, kills: no `stopped` event) a run may go through
   * without a new checkpoint before it is failed instead of resumed (TRAINER_MAX_RESUMES): a run
   * that crashes the trainer must not crash it forever. Clean shutdowns (`shutdown`) do not count.
   */
  maxResumes: number;
  /** Sees every event of every run as it is appended (the trainer's metrics). */
  onEvent?: (e: RunEvent) => void;
};

interface Active {
  info: RunInfo;
  history: RunHistory;
  listeners: Set<(e: RunStreamEvent) => void>;
  abort: AbortController | null;
  /** The run's TensorBoard event file while it trains with `reportTo: ["tensorboard"]`. */
  tensorboard: TensorBoardReporter | null;
}

const recordSchema = z.object({
  status: z.enum(["running", "completed", "failed", "cancelled"]),
  error: z.string().nullable(),
  createdAt: z.string(),
  config: runConfigSchema,
});

/** Every run this trainer knows: created over the API or loaded from TRAINER_DATA_DIR at start. */
export class RunManager {
  private readonly runs = new Map<string, Active>();
  /** Set by `shutdown`: the process is exiting, and its runs' histories end at `stopped`. */
  private closing = false;
  /** The run whose create() is between its checks and its registration, if any. */
  private creating: string | null = null;

  constructor(private readonly d: RunManagerDeps) {}

  private get dir(): string {
    return join(this.d.dataDir, "runs");
  }

  private async persist(a: Active): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, `${a.info.run}.json`);
    const { status, error, createdAt, config } = a.info;
    await writeFile(`${path}.tmp`, JSON.stringify({ status, error, createdAt, config }, null, 2));
    await rename(`${path}.tmp`, path);
  }

  private historyPath(run: string): string {
    return join(this.dir, `${run}.events.jsonl`);
  }

  /**
   * Loads every run on disk with its history, and resumes those that were running when the process
   * stopped, each from its newest checkpoint: its history gets a `resumed` event before this
   * returns (so every subscriber learns of the resume before any redone step), then the redone
   * steps under new ids.
   */
  async resumeAll(): Promise<void> {
    const files = await readdir(this.dir).catch(() => [] as string[]);
    for (const f of files.filter((x) => x.endsWith(".json"))) {
      const parsed = recordSchema.safeParse(JSON.parse(await readFile(join(this.dir, f), "utf8")));
      if (!parsed.success) {
        // A record from before a rule tightened (a regex RE2 cannot run): kept on disk, not loaded.
        this.d.log.error("run record no longer valid; not loaded", { file: f, error: parsed.error.message });
        continue;
      }
      const record = parsed.data;
      const { history, summary } = await RunHistory.open(this.historyPath(record.config.run), this.d.log);
      // Records written before paths were made absolute at creation hold a relative one: it can
      // only mean this working directory, as it did when they were read before.
      const config = withAbsoluteDatasetPath(record.config, this.d.cwd);
      const a = this.track(config, record.createdAt, history);
      applySummary(a.info, summary);
      if (summary.status !== null) {
        // The history's final event is written first; a record still "running" missed its update.
        if (record.status === "running") await this.persist(a);
      } else if (
        record.status === "running" &&
        !summary.stoppedCleanly &&
        summary.crashesSinceCheckpoint + 1 >= this.d.maxResumes
      ) {
        // This crash and those since the newest checkpoint: the run keeps bringing the trainer down.
        const crashes = summary.crashesSinceCheckpoint + 1;
        const error = `not resumed: the trainer crashed or was killed ${crashes} times in a row during this run without a new checkpoint (TRAINER_MAX_RESUMES=${this.d.maxResumes}; clean shutdowns do not count); the last checkpoint is at step ${a.info.step}`;
        this.d.log.error("run failed", { run: a.info.run, step: a.info.step, error });
        this.emit(a, { type: "status", status: "failed", error });
        history.close();
        await this.persist(a);
      } else if (record.status === "running") {
        this.d.log.info("resuming run", { run: a.info.run, step: a.info.step, events: history.lastSeq });
        await this.launch(a);
      } else {
        // A history from before histories were kept, or cut short by damage: give it its end.
        this.emit(a, { type: "status", status: record.status, error: record.error });
        history.close();
      }
    }
  }

  private track(config: RunConfig, createdAt: string, history: RunHistory): Active {
    const a: Active = {
      info: {
        run: config.run,
        status: "running",
        error: null,
        step: 0,
        steps: config.steps,
        version: null,
        metrics: null,
        createdAt,
        config,
      },
      history,
      listeners: new Set(),
      abort: null,
      tensorboard: null,
    };
    this.runs.set(config.run, a);
    return a;
  }

  /** Checks the whole config (run-plan.ts) before answering, then starts the run in the background. */
  async create(body: unknown): Promise<RunInfo> {
    const plan = await planRun(body, this.d.session.spec, this.d.egress, this.d.cwd);
    if (!plan.ok) throw plan.error;
    const { config } = plan.value;
    // After the checks' awaits, so two creates cannot both pass these and both start.
    if (this.runs.has(config.run) || this.creating === config.run) {
      throw new TrainerError("conflict", `run ${config.run} already exists`);
    }
    const busy = this.creating ?? [...this.runs.values()].find((r) => r.info.status === "running")?.info.run;
    if (busy !== undefined) {
      throw new TrainerError("conflict", `run ${busy} is running; this trainer trains one run at a time`);
    }
    // Claimed before the awaits below, so a second create cannot pass the checks above meanwhile.
    this.creating = config.run;
    let a: Active;
    try {
      await mkdir(this.dir, { recursive: true });
      // A history left by a run of this name whose record is gone belongs to no run now.
      await rm(this.historyPath(config.run), { force: true });
      const { history } = await RunHistory.open(this.historyPath(config.run), this.d.log);
      a = this.track(config, new Date(this.d.clock.now()).toISOString(), history);
    } finally {
      this.creating = null;
    }
    await this.persist(a);
    await this.launch(a, plan.value);
    return a.info;
  }

  /**
   * Marks the trainer's shutdown as clean in every running run's history (a `stopped` event, flushed
   * to the device), so the next start resumes it without counting a crash. Nothing is appended after
   * it: events of a step still under way are dropped, as the resume redoes that step anyway.
   */
  shutdown(): void {
    for (const a of this.runs.values()) {
      if (a.info.status !== "running" || a.abort === null) continue;
      this.emit(a, { type: "stopped", step: a.info.step });
      a.history.close();
      a.tensorboard?.close();
      this.d.log.info("run stopped with the trainer; it resumes at the next start", {
        run: a.info.run,
        step: a.info.step,
      });
    }
    this.closing = true;
  }

  /** Appends to the run's history (before anyone sees it), updates its summary, tells subscribers. */
  private emit(a: Active, e: RunEvent): void {
    if (this.closing) return;
    const event = a.history.append(e);
    this.d.onEvent?.(e);
    if (e.type === "step")
      this.d.log.debug("step", {
        run: a.info.run,
        step: e.step,
        version: a.info.version,
        phasesMs: e.phasesMs,
      });
    this.report(a, e);
    foldProgress(a.info, e);
    if (e.type === "status") {
      a.info.status = e.status;
      a.info.error = e.error;
    }
    for (const l of a.listeners) l(event);
  }

  /**
   * Sends the event's scalars over OTLP when that is on, and writes them to the run's TensorBoard
   * file, if it has one, closing it with the run. A file
   * that cannot be written (disk full) stops the files, not the run: the history is the record.
   */
  private report(a: Active, e: RunEvent): void {
    this.d.otlp?.record(a.info.run, e);
    const tb = a.tensorboard;
    if (tb === null) return;
    try {
      tb.record(e);
      if (e.type === "status") {
        tb.close();
        a.tensorboard = null;
      }
    } catch (error) {
      this.d.log.error("TensorBoard event file not written; the run goes on without it", {
        run: a.info.run,
        path: tb.path,
        error,
      });
      a.tensorboard = null;
      try {
        tb.close();
      } catch {
        // Already reported above; the descriptor is gone either way.
      }
    }
  }

  /**
   * Prepares the run (its plan, the loop, the newest checkpoint), then trains in the background. A
   * run that cannot start fails with the reason. A resumed run is planned again here (a new one
   * comes with its plan) and gets its `resumed` event once its checkpoint is restored.
   */
  private async launch(a: Active, planned?: RunPlan): Promise<void> {
    const abort = new AbortController();
    a.abort = abort;
    const finish = async (status: RunStatus, error: string | null) => {
      // A run that ends while the trainer shuts down stays "running" on disk, to be resumed.
      if (this.closing) return;
      a.abort = null;
      this.emit(a, { type: "status", status, error });
      a.history.close();
      await this.persist(a);
    };
    const fail = async (e: unknown) => {
      // Failures the shutdown itself causes (the store client closed under a publish) are no run's.
      if (this.closing) return;
      if (abort.signal.aborted) {
        await finish("cancelled", "cancelled over the API");
        return;
      }
      const message = e instanceof Error ? e.message : String(e);
      this.d.log.error("run failed", { run: a.info.run, step: a.info.step, error: message });
      await finish("failed", message);
    };
    let loop: RunLoop;
    try {
      let plan = planned;
      if (plan === undefined) {
        const replanned = await replanRun(a.info.config, this.d.session.spec);
        if (!replanned.ok) throw replanned.error;
        plan = replanned.value;
      }
      const { config } = a.info;
      if (config.reportTo.includes("tensorboard")) {
        const dir = join(this.d.tensorboardDir, config.loggingDir ?? config.run);
        a.tensorboard = openReporter(dir, this.d.clock);
      }
      const fleet = a.info.config.generators;
      loop = new RunLoop(plan, {
        ...this.d,
        rollouts: fleet === null ? this.d.rollouts : new FleetRollouts({ ...fleet, fetch: this.d.fetch }),
        emit: (e) => this.emit(a, e),
      });
      const restored = await loop.restore();
      if (planned === undefined) {
        this.emit(a, {
          type: "resumed",
          step: restored.step,
          lastStep: a.info.step,
          version: restored.version,
        });
      }
    } catch (e) {
      await fail(e);
      return;
    }
    void (async () => {
      try {
        await loop.run(abort.signal);
        await finish("completed", null);
        this.d.log.info("run completed", { run: a.info.run, steps: a.info.step, version: a.info.version });
      } catch (e) {
        await fail(e);
      }
    })();
  }

  /** Every known run, in creation (or load) order. */
  list(): RunInfo[] {
    return [...this.runs.values()].map((a) => a.info);
  }

  /** The run named `run`; throws TrainerError `not_found` for an unknown one. */
  get(run: string): RunInfo {
    const a = this.runs.get(run);
    if (a === undefined) throw new TrainerError("not_found", `no run ${run}`);
    return a.info;
  }

  /**
   * Stops a running run (it ends `cancelled`); throws TrainerError `not_found` for an unknown run,
   * `conflict` for one that is not running.
   */
  cancel(run: string): RunInfo {
    const a = this.runs.get(run);
    if (a === undefined) throw new TrainerError("not_found", `no run ${run}`);
    if (a.abort === null) throw new TrainerError("conflict", `run ${run} is ${a.info.status}, not running`);
    a.abort.abort();
    return a.info;
  }

  /**
   * The run's events with ids after `after`: its history read from disk, then live ones, ending
   * with the final status event (at once if the run stopped and `after` is past it) or when
   * `signal` aborts. Throws not_found for an unknown run.
   */
  async *events(run: string, after: number, signal: AbortSignal): AsyncGenerator<RunStreamEvent> {
    const a = this.runs.get(run);
    if (a === undefined) throw new TrainerError("not_found", `no run ${run}`);
    // Events up to upTo are on disk already; later ones arrive through the listener.
    const upTo = a.history.lastSeq;
    const live: RunStreamEvent[] = [];
    let wake: (() => void) | null = null;
    const listener = (e: RunStreamEvent) => {
      live.push(e);
      wake?.();
    };
    const onAbort = () => wake?.();
    a.listeners.add(listener);
    signal.addEventListener("abort", onAbort);
    try {
      for await (const e of a.history.replay(after, upTo)) {
        if (signal.aborted) return;
        yield e;
      }
      if (a.info.status !== "running" && live.length === 0) return;
      while (!signal.aborted) {
        const e = live.shift();
        if (e === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
          continue;
        }
        if (e.seq <= after) continue;
        yield e;
        if (e.type === "status") return;
      }
    } finally {
      a.listeners.delete(listener);
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/** The run's TensorBoard reporter; a folder it cannot write fails the run with a reason naming it. */
function openReporter(dir: string, clock: RunManagerDeps["clock"]): TensorBoardReporter {
  try {
    return new TensorBoardReporter(dir, clock);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new TrainerError("internal", `reportTo tensorboard: cannot write event files in ${dir}: ${why}`);
  }
}

function applySummary(info: RunInfo, s: HistorySummary): void {
  info.step = s.step;
  info.metrics = s.metrics;
  info.version = s.version;
  if (s.status !== null) {
    info.status = s.status.status;
    info.error = s.status.error;
  }
}
