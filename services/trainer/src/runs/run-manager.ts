/**
 * Runs over REST: validation, one active run at a time (they share the loaded base), status kept
 * on disk so a restarted trainer resumes every run that was running from its newest checkpoint,
 * and per-run event history for SSE subscribers.
 */
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { TrainerError } from "../errors.ts";
import { type RunConfig, runConfigSchema } from "./config.ts";
import { datasetNeeds, type Example, loadDataset } from "./dataset.ts";
import { FleetRollouts } from "./rollouts.ts";
import { type RunEvent, RunLoop, type RunLoopDeps } from "./run-loop.ts";
import { planRun } from "./run-plan.ts";

export type RunStatus = "running" | "completed" | "failed" | "cancelled";

export interface RunInfo {
  run: string;
  status: RunStatus;
  error: string | null;
  step: number;
  steps: number;
  version: number | null;
  metrics: Record<string, number> | null;
  createdAt: string;
  config: RunConfig;
}

/** The loop's dependencies, less the per-run ones the manager supplies (data, events). */
export type RunManagerDeps = Omit<RunLoopDeps, "data" | "emit"> & { dataDir: string };

/** What `GET /v1/runs/:id/events` streams: the loop's events and the run's status changes. */
export type RunStreamEvent = (RunEvent | { type: "status"; status: RunStatus; error: string | null }) & {
  seq: number;
};

interface Active {
  info: RunInfo;
  events: RunStreamEvent[];
  listeners: Set<(e: RunStreamEvent) => void>;
  abort: AbortController | null;
}

const recordSchema = z.object({
  status: z.enum(["running", "completed", "failed", "cancelled"]),
  error: z.string().nullable(),
  createdAt: z.string(),
  config: runConfigSchema,
});

export class RunManager {
  private readonly runs = new Map<string, Active>();

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

  /** Loads every run on disk and resumes those that were running when the process stopped. */
  async resumeAll(): Promise<void> {
    const files = await readdir(this.dir).catch(() => [] as string[]);
    for (const f of files.filter((x) => x.endsWith(".json"))) {
      const record = recordSchema.parse(JSON.parse(await readFile(join(this.dir, f), "utf8")));
      const a = this.track(record.config, record.createdAt, record.status, record.error);
      if (record.status === "running") {
        this.d.log.info("resuming run", { run: a.info.run });
        this.launch(a);
      } else {
        this.emit(a, { type: "status", status: record.status, error: record.error });
      }
    }
  }

  private track(config: RunConfig, createdAt: string, status: RunStatus, error: string | null): Active {
    const a: Active = {
      info: {
        run: config.run,
        status,
        error,
        step: 0,
        steps: config.steps,
        version: null,
        metrics: null,
        createdAt,
        config,
      },
      events: [],
      listeners: new Set(),
      abort: null,
    };
    this.runs.set(config.run, a);
    return a;
  }

  /** Checks the whole config (run-plan.ts) before answering, then starts the run in the background. */
  async create(body: unknown): Promise<RunInfo> {
    const plan = await planRun(body, this.d.session.spec);
    if (!plan.ok) throw plan.error;
    const { config, data } = plan.value;
    // After the checks' awaits, so two creates cannot both pass these and both start.
    if (this.runs.has(config.run)) throw new TrainerError("conflict", `run ${config.run} already exists`);
    const busy = [...this.runs.values()].find((r) => r.info.status === "running");
    if (busy !== undefined) {
      throw new TrainerError(
        "conflict",
        `run ${busy.info.run} is running; this trainer trains one run at a time`,
      );
    }
    const a = this.track(config, new Date(this.d.clock.now()).toISOString(), "running", null);
    await this.persist(a);
    this.launch(a, data);
    return a.info;
  }

  private emit(a: Active, e: RunEvent | { type: "status"; status: RunStatus; error: string | null }): void {
    const event = { ...e, seq: a.events.length + 1 };
    a.events.push(event);
    if (e.type === "step") {
      a.info.step = e.step;
      a.info.metrics = e.metrics;
    } else if (e.type === "published") {
      a.info.version = e.version;
    }
    for (const l of a.listeners) l(event);
  }

  /** Starts the loop in the background; a resumed run reads its dataset here, a new one already has. */
  private launch(a: Active, loaded?: Example[]): void {
    const abort = new AbortController();
    a.abort = abort;
    const finish = async (status: RunStatus, error: string | null) => {
      a.info.status = status;
      a.info.error = error;
      a.abort = null;
      await this.persist(a);
      this.emit(a, { type: "status", status, error });
    };
    void (async () => {
      try {
        let data = loaded;
        if (data === undefined) {
          const read = await loadDataset(a.info.config.dataset.path, datasetNeeds(a.info.config));
          if (!read.ok) throw read.error;
          data = read.value;
        }
        const fleet = a.info.config.generators;
        const loop = new RunLoop(a.info.config, {
          ...this.d,
          rollouts: fleet === null ? this.d.rollouts : new FleetRollouts(fleet),
          data,
          emit: (e) => this.emit(a, e),
        });
        a.info.step = await loop.restore();
        await loop.run(abort.signal);
        await finish("completed", null);
        this.d.log.info("run completed", { run: a.info.run, steps: a.info.step, version: a.info.version });
      } catch (e) {
        if (abort.signal.aborted) {
          await finish("cancelled", "cancelled over the API");
          return;
        }
        const message = e instanceof Error ? e.message : String(e);
        this.d.log.error("run failed", { run: a.info.run, step: a.info.step, error: message });
        await finish("failed", message);
      }
    })();
  }

  list(): RunInfo[] {
    return [...this.runs.values()].map((a) => a.info);
  }

  get(run: string): RunInfo {
    const a = this.runs.get(run);
    if (a === undefined) throw new TrainerError("not_found", `no run ${run}`);
    return a.info;
  }

  cancel(run: string): RunInfo {
    const a = this.runs.get(run);
    if (a === undefined) throw new TrainerError("not_found", `no run ${run}`);
    if (a.abort === null) throw new TrainerError("conflict", `run ${run} is ${a.info.status}, not running`);
    a.abort.abort();
    return a.info;
  }

  /** Past events after `after`, then live ones; returns the unsubscribe function. */
  subscribe(run: string, after: number, listener: (e: RunStreamEvent) => void): () => void {
    const a = this.runs.get(run);
    if (a === undefined) throw new TrainerError("not_found", `no run ${run}`);
    for (const e of a.events) if (e.seq > after) listener(e);
    a.listeners.add(listener);
    return () => a.listeners.delete(listener);
  }
}
