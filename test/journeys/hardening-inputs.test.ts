/**
 * Hostile input cannot wedge the trainer (issue 15, item 6), on real processes: the embedded S3
 * server and a trainer on the demo base. A regex reward that backtracks exponentially in a
 * backtracking engine runs in linear time (RE2), so `/healthz` and cancel keep answering during the
 * run, and after a SIGKILL the resumed run does not wedge the restarted trainer. A pattern RE2
 * cannot run (the issue's own `[^]`/`\u` spelling, a backreference, an overlong pattern) is refused
 * at `POST /v1/runs` within a second, naming the field. A run that stops the trainer again and again
 * without a new checkpoint is failed with the reason after TRAINER_MAX_RESUMES crashes or kills
 * (item 7); clean shutdowns (SIGTERM) do not count, however many.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type RunInfo,
  runInfoSchema,
  runListSchema,
  trainerErrorBodySchema,
} from "@loracast/shared/trainer-api";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson } from "../helpers/training.ts";

/** Exponential in a backtracking engine on any completion that lacks "\0\1" (all of them). */
const EXPONENTIAL = String.raw`^([\s\S]|[\s\S])*\x00\x01$`;

describe("hostile runs cannot wedge the trainer", () => {
  let stack: Stack;
  let work: string;
  let dataset: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-inputs-"));
    dataset = (await buildTrainingFixture(work)).dataset;
    const fixture = join(work, "model");
    stack = await startStack({ trainerEnv: { TRAINER_MODEL_DIR: fixture, TRAINER_THREADS: "1" } });
  });
  after(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Fails when the trainer takes longer than `ms` to answer (a pinned event loop never does). */
  const timed = async (path: string, init: RequestInit = {}, ms = 2000): Promise<Response> => {
    const started = Date.now();
    const res = await fetch(`${stack.trainer.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(ms),
    });
    assert.ok(Date.now() - started < ms, `${path} answered within ${ms} ms`);
    return res;
  };
  const info = async (run: string): Promise<RunInfo> =>
    runInfoSchema.parse(await (await timed(`/v1/runs/${run}`)).json());
  const waitStep = async (run: string, atLeast: number, timeoutMs = 120_000): Promise<RunInfo> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = await info(run);
      if (now.step >= atLeast) return now;
      assert.ok(Date.now() < deadline, `${run} reached step ${atLeast} (at ${now.step}, ${now.status})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  it("refuses, within a second, a pattern RE2 cannot run, naming the field", async () => {
    const cases: [string, string][] = [
      ["issue-pattern", String.raw`^([^]|[^])*\u0000\u0001$`],
      ["backreference", String.raw`(a)\1`],
      ["lookahead", "(?=a)b"],
      ["overlong", "a".repeat(5000)],
    ];
    for (const [run, pattern] of cases) {
      const started = Date.now();
      const res = await postJson(`${stack.trainer.url}/v1/runs`, {
        ...grpoRun(run, dataset, 4),
        rewards: [{ type: "regex", pattern }],
      });
      const text = await res.text();
      assert.ok(Date.now() - started < 1000, `${run}: answered within a second`);
      assert.equal(res.status, 400, `${run}: ${text}`);
      const { error } = trainerErrorBodySchema.parse(JSON.parse(text));
      assert.equal(error.code, "invalid_config", run);
      assert.match(error.message, /^rewards\.0\.pattern: /, run);
    }
    const { runs } = runListSchema.parse(await (await timed("/v1/runs")).json());
    assert.deepEqual(runs, [], "no run was created");
  });

  it("keeps /healthz and cancel answering during a run with an exponential pattern, also after SIGKILL and restart", async () => {
    const config = { ...grpoRun("redos", dataset, 1000), publishEvery: 1000, checkpointEvery: 2 };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, {
      ...config,
      rewards: [{ type: "regex", pattern: EXPONENTIAL }],
    });
    assert.equal(res.status, 201, await res.clone().text());
    // Each step scores 32 completions with the pattern: reaching step 3 means rewards finished.
    await waitStep("redos", 3);
    for (let i = 0; i < 5; i++) {
      assert.equal((await timed("/healthz")).status, 200);
      await new Promise((r) => setTimeout(r, 100));
    }

    await stack.trainer.kill();
    await stack.startTrainer();
    const resumed = await waitStep("redos", 5);
    assert.equal(resumed.status, "running", "the run resumed after the restart");
    for (let i = 0; i < 5; i++) {
      assert.equal((await timed("/healthz")).status, 200);
      await new Promise((r) => setTimeout(r, 100));
    }

    const cancel = await timed("/v1/runs/redos/cancel", { method: "POST" });
    assert.equal(cancel.status, 200, await cancel.clone().text());
    const deadline = Date.now() + 30_000;
    while ((await info("redos")).status === "running") {
      assert.ok(Date.now() < deadline, "the run stops after cancel");
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal((await info("redos")).status, "cancelled");
  });

  it("resumes a run after more clean shutdowns (SIGTERM) than TRAINER_MAX_RESUMES, then counts only kills", async () => {
    const env = { TRAINER_MAX_RESUMES: "2" };
    const config = { ...grpoRun("graceful", dataset, 1000), publishEvery: 1000, checkpointEvery: 1000 };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    await waitStep("graceful", 1);
    for (let stop = 1; stop <= 3; stop++) {
      await stack.trainer.stop();
      assert.equal(stack.trainer.proc.exitCode, 0, `SIGTERM ${stop}: the trainer shut down cleanly`);
      await stack.startTrainer(env);
      // Resumed from the start (no checkpoint), and it trains again.
      const resumed = await waitStep("graceful", 1);
      assert.equal(resumed.status, "running", `resumed after SIGTERM ${stop}`);
    }
    // A kill is a crash: the first is resumed, the second in a row fails the run.
    await stack.trainer.kill();
    await stack.startTrainer(env);
    assert.equal((await waitStep("graceful", 1)).status, "running", "resumed after one kill");
    await stack.trainer.kill();
    await stack.startTrainer(env);
    const failed = runInfoSchema.parse(await (await timed("/v1/runs/graceful")).json());
    assert.equal(failed.status, "failed");
    assert.match(failed.error ?? "", /^not resumed: the trainer crashed or was killed 2 times in a row /);
    const stream = await (await fetch(`${stack.trainer.url}/v1/runs/graceful/events`)).text();
    assert.equal(stream.match(/"type":"stopped"/g)?.length, 3, "each SIGTERM is in the history");
  });

  it("fails a run, with the reason, instead of resuming it after TRAINER_MAX_RESUMES stops without a checkpoint", async () => {
    const env = { TRAINER_MAX_RESUMES: "2" };
    const config = { ...grpoRun("crashy", dataset, 1000), publishEvery: 1000, checkpointEvery: 1000 };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    await waitStep("crashy", 1);
    await stack.trainer.kill();
    await stack.startTrainer(env);
    // The first stop: resumed from the start (no checkpoint), and it trains again.
    const resumed = await waitStep("crashy", 1);
    assert.equal(resumed.status, "running");
    await stack.trainer.kill();
    await stack.startTrainer(env);
    const failed = runInfoSchema.parse(await (await timed("/v1/runs/crashy")).json());
    assert.equal(failed.status, "failed", "the second stop without a checkpoint fails the run");
    assert.match(
      failed.error ?? "",
      /^not resumed: the trainer crashed or was killed 2 times in a row .*TRAINER_MAX_RESUMES=2/,
    );
    assert.equal((await timed("/healthz")).status, 200);
  });
});
