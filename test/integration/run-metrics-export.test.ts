/**
 * Run metrics where RL people read them, from a real trainer process. TensorBoard event files of real runs (embedded S3, the demo base,
 * in-process rollouts), read back with the event file reader (TFRecord + TensorBoard's own
 * `Event` protos) and compared with the same runs' SSE events: every scalar of every step,
 * publish and checkpoint, at its step, under the documented tag (the README's table), with a
 * wall time from the trainer's clock. A run killed with SIGKILL and resumed shows, as TensorBoard
 * reads it (a session START purges the points of the lost steps), exactly the history's steps.
 * With OTEL_EXPORTER_OTLP_ENDPOINT set, the same scalars reach a real HTTP receiver as OTLP gauges.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually } from "@loracast/dev-support/supervisor";
import { readSse } from "@loracast/shared/platform";
import { readEventDir, type TensorBoardEvent } from "@loracast/shared/tensorboard";
import { type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/trainer-api";
import { SCALAR_NAMES } from "../../services/trainer/src/reporting/index.ts";
import { type Stack, startStack } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson } from "../helpers/training.ts";

/** Reads the run's SSE stream until its status event, or until `stop` says so (then aborts). */
async function follow(url: string, stop: (e: RunStreamEvent) => boolean = () => false) {
  const events: RunStreamEvent[] = [];
  const controller = new AbortController();
  try {
    for await (const data of readSse(url, controller.signal)) {
      const e = runStreamEventSchema.parse(data);
      events.push(e);
      if (stop(e)) controller.abort();
    }
  } catch (e) {
    if (!controller.signal.aborted) throw e;
  }
  return events;
}

/** Tag → step → value: the points a chart shows. */
type Points = Map<string, Map<number, number>>;

const put = (p: Points, tag: string, step: number, value: number) => {
  const series = p.get(tag) ?? new Map<number, number>();
  series.set(step, value);
  p.set(tag, series);
};
/** Drops every point at `from` or later, as TensorBoard does on a session START at `from`. */
const purgeFrom = (p: Points, from: number) => {
  for (const series of p.values()) for (const step of series.keys()) if (step >= from) series.delete(step);
};

/** The documented tag of a run event field (README's table; `metrics.<other>` → `loracast/<other>`). */
function tagOf(source: string): string {
  const named = SCALAR_NAMES.find((s) => s.source === source);
  if (named !== undefined) return named.tag;
  const [kind, name] = source.split(".");
  return kind === "phasesMs" ? `loracast/phase_ms/${name}` : `loracast/${name}`;
}

/** What the SSE history says each chart shows: float32 values, as TensorBoard keeps them. */
function expectedFromSse(events: readonly RunStreamEvent[]): Points {
  const p: Points = new Map();
  const f32 = (v: number | null) => (v === null ? Number.NaN : Math.fround(v));
  for (const e of events) {
    if (e.type === "step") {
      for (const [k, v] of Object.entries(e.metrics)) put(p, tagOf(`metrics.${k}`), e.step, f32(v));
      for (const [k, v] of Object.entries(e.phasesMs)) put(p, tagOf(`phasesMs.${k}`), e.step, f32(v));
    } else if (e.type === "published") {
      put(p, tagOf("published.version"), e.step, e.version);
      put(p, tagOf("published.ms"), e.step, f32(e.ms));
    } else if (e.type === "checkpoint") {
      put(p, tagOf("checkpoint.ms"), e.step, f32(e.ms));
    } else if (e.type === "skipped") {
      put(p, tagOf("skipped"), e.step, 1);
    } else if (e.type === "resumed") {
      purgeFrom(p, e.step + 1);
    }
  }
  return p;
}

/** What TensorBoard shows from the event files: points in read order, session STARTs purging. */
function shownByTensorBoard(events: readonly TensorBoardEvent[]): Points {
  const p: Points = new Map();
  for (const e of events) {
    if (e.kind === "scalars") for (const s of e.scalars) put(p, s.tag, e.step, s.value);
    else if (e.kind === "session_log" && e.status === "START") purgeFrom(p, e.step);
  }
  return p;
}

/** One OTLP/HTTP JSON gauge point as the exporter sends it (opentelemetry-proto's JSON mapping). */
interface OtlpPoint {
  name: string;
  attributes: Record<string, string>;
  value: number;
}

/** A tiny OTLP receiver: every gauge point POSTed to /v1/metrics, flattened (bodies bounded to 4 MiB). */
async function startOtlpReceiver(): Promise<{ server: Server; url: string; points: OtlpPoint[] }> {
  const points: OtlpPoint[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= 4 << 20) chunks.push(c);
    });
    req.on("end", () => {
      if (req.url !== "/v1/metrics" || size > 4 << 20) {
        res.writeHead(400).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      for (const rm of body.resourceMetrics ?? [])
        for (const sm of rm.scopeMetrics ?? [])
          for (const m of sm.metrics ?? [])
            for (const dp of m.gauge?.dataPoints ?? []) {
              const attributes = Object.fromEntries(
                (dp.attributes ?? []).map((a: { key: string; value: { stringValue?: string } }) => [
                  a.key,
                  a.value.stringValue ?? "",
                ]),
              );
              points.push({ name: m.name, attributes, value: Number(dp.asDouble ?? dp.asInt) });
            }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return { server, url: `http://127.0.0.1:${address.port}`, points };
}

describe("run metrics in TensorBoard files and over OTLP", () => {
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let stack: Stack;
  let work: string;
  let dataset: string;
  let tbRoot: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-tb-"));
    const fixture = await buildTrainingFixture(work);
    dataset = fixture.dataset;
    tbRoot = join(work, "tensorboard");
    otlp = await startOtlpReceiver();
    stack = await startStack({
      trainerEnv: {
        TRAINER_MODEL_DIR: fixture.modelDir,
        TRAINER_THREADS: "1",
        TRAINER_TENSORBOARD_DIR: tbRoot,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_METRIC_EXPORT_INTERVAL: "1000",
      },
    });
  });
  after(async () => {
    await stack?.stop();
    otlp?.server.close();
    rmSync(work, { recursive: true, force: true });
  });

  const read = (dir: string) => {
    const r = readEventDir(dir);
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  };

  it("a GRPO run's files hold every scalar of its SSE events, under TRL's names, at its steps", async () => {
    const t0 = Date.now() / 1000;
    const config = {
      ...grpoRun("tb-grpo", dataset, 4),
      reportTo: ["tensorboard"],
      loggingDir: "team/tb-grpo",
    };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    const events = await follow(`${stack.trainer.url}/v1/runs/tb-grpo/events`);
    const last = events.at(-1);
    assert.ok(last?.type === "status" && last.status === "completed", JSON.stringify(last));
    const t1 = Date.now() / 1000;

    const dir = join(tbRoot, "team", "tb-grpo");
    assert.deepEqual(
      readdirSync(tbRoot),
      ["team"],
      "nothing but the run's folder under TRAINER_TENSORBOARD_DIR",
    );
    const { events: tb, partial } = read(dir);
    assert.deepEqual(partial, []);
    assert.equal(tb[0]?.kind === "file_version" && tb[0].fileVersion, "brain.Event:2");
    const scalarEvents = tb.filter((e) => e.kind === "scalars");
    // One TensorBoard event per SSE event with scalars, at the same step, in the same order.
    assert.deepEqual(
      scalarEvents.map((e) => e.step),
      events.flatMap((e) =>
        e.type === "step" || e.type === "published" || e.type === "checkpoint" || e.type === "skipped"
          ? [e.step]
          : [],
      ),
    );
    for (const e of scalarEvents)
      assert.ok(e.wallTime >= t0 - 1 && e.wallTime <= t1 + 1, `wall time ${e.wallTime}`);

    const shown = shownByTensorBoard(tb);
    assert.deepEqual(shown, expectedFromSse(events));
    // The names a TRL user looks for are there, with the SSE's values.
    const step2 = events.find((e) => e.type === "step" && e.step === 2);
    assert.ok(step2?.type === "step");
    for (const [tag, metric] of [
      ["train/reward", "reward_mean"],
      ["train/reward_std", "reward_std"],
      ["train/frac_reward_zero_std", "frac_reward_zero_std"],
      ["train/loss", "loss"],
      ["train/grad_norm", "grad_norm"],
      ["train/learning_rate", "lr"],
      ["train/kl", "kl"],
      ["train/clip_ratio/region_mean", "clip_fraction"],
      ["train/completions/mean_length", "completion_length"],
      ["loracast/staleness", "staleness"],
    ] as const) {
      assert.equal(shown.get(tag)?.get(2), Math.fround(step2.metrics[metric] ?? Number.NaN), tag);
    }
    assert.ok((shown.get("loracast/phase_ms/rollout")?.size ?? 0) === 4, "a rollout time per step");

    // Over OTLP: the run's newest values, as gauges named like the tags, attributed to the run.
    const step4 = events.find((e) => e.type === "step" && e.step === 4);
    assert.ok(step4?.type === "step");
    const newest = (name: string) =>
      otlp.points.filter((p) => p.name === name && p.attributes.run === "tb-grpo").at(-1)?.value;
    const published = events.filter((e) => e.type === "published").at(-1);
    assert.ok(published?.type === "published" && published.step === 4);
    // The last publish follows step 4's metrics; the run's final status exports at once.
    await eventually(
      "the run's last values over OTLP",
      async () => (newest("loracast/published_version") === published.version ? true : undefined),
      15_000,
      100,
    );
    assert.equal(newest("loracast/step"), 4);
    assert.equal(newest("train/reward"), step4.metrics.reward_mean);
    assert.equal(newest("train/loss"), step4.metrics.loss);
    assert.equal(newest("train/learning_rate"), step4.metrics.lr);
    assert.equal(newest("loracast/staleness"), step4.metrics.staleness);
  });

  it("a run killed with SIGKILL and resumed shows, as TensorBoard reads its two files, exactly its history", async () => {
    const config = { ...grpoRun("tb-resume", dataset, 8), reportTo: ["tensorboard"] };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    // Killed once it has checkpointed after step 2 and gone on: steps after the checkpoint are lost.
    await follow(`${stack.trainer.url}/v1/runs/tb-resume/events`, (e) => e.type === "step" && e.step >= 3);
    await stack.trainer.kill();
    const trainer = await stack.startTrainer();
    const events = await follow(`${trainer.url}/v1/runs/tb-resume/events`);
    const last = events.at(-1);
    assert.ok(last?.type === "status" && last.status === "completed", JSON.stringify(last));
    const resumed = events.find((e) => e.type === "resumed");
    assert.ok(resumed?.type === "resumed", "the history records the resume");

    const dir = join(tbRoot, "tb-resume");
    assert.equal(readdirSync(dir).length, 2, "one event file per start of the run");
    const { events: tb } = read(dir);
    const start = tb.find((e) => e.kind === "session_log");
    assert.ok(start?.kind === "session_log" && start.status === "START");
    assert.equal(start.step, resumed.step + 1, "the new session starts at the first redone step");
    if (resumed.lastStep > resumed.step) {
      // The kill lost steps: the first file holds points the new session's START must purge.
      const lost = tb
        .slice(0, tb.indexOf(start))
        .filter((e) => e.kind === "scalars" && e.step > resumed.step);
      assert.ok(lost.length > 0, "the first file has the lost steps' points");
    }
    const shown = shownByTensorBoard(tb);
    assert.deepEqual(shown, expectedFromSse(events));
    assert.deepEqual(
      [...(shown.get("train/reward")?.keys() ?? [])].sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.ok(!existsSync(join(tbRoot, "tb-grpo")), "each run in its own loggingDir");
  });
});
