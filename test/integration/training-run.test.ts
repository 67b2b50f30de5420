/**
 * Training runs end to end on real processes: the embedded S3 server, a trainer with the demo base,
 * two generators on the same artifacts. A GRPO run over REST publishes versions the generators
 * activate; a GRPO run whose rollouts the two generators sample learns as the in-process one does
 * (the choices of each prompt differ, so its advantages and gradients are not 0); a run survives a
 * SIGKILL of the trainer and completes with contiguous versions, every one of them in its history.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readSse } from "@loracast/shared/platform";
import {
  type RunStreamEvent,
  runInfoSchema,
  runStreamEventSchema,
  runVersionsSchema,
  trainerErrorBodySchema,
} from "@loracast/shared/trainer-api";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson } from "../helpers/training.ts";

/** Reads the run's SSE stream until its status event (or the stream ends). */
async function follow(
  url: string,
  onEvent: (e: RunStreamEvent) => void = () => {},
  signal?: AbortSignal,
): Promise<RunStreamEvent[]> {
  const events: RunStreamEvent[] = [];
  for await (const data of readSse(url, signal)) {
    const e = runStreamEventSchema.parse(data);
    events.push(e);
    onEvent(e);
  }
  return events;
}

/** The run's final status, when the last event is its status event. */
const finalStatus = (events: readonly RunStreamEvent[]): string | undefined => {
  const last = events.at(-1);
  return last?.type === "status" ? last.status : undefined;
};

/** The mean of `reward_mean` over `steps[from..to)` (step events). */
const meanReward = (steps: readonly RunStreamEvent[], from: number, to: number): number =>
  steps.slice(from, to).reduce((a, e) => a + (e.type === "step" ? (e.metrics.reward_mean ?? 0) : 0), 0) /
  (to - from);

describe("training runs over REST", () => {
  let stack: Stack;
  let work: string;
  let dataset: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-train-"));
    const fixture = await buildTrainingFixture(work);
    dataset = fixture.dataset;
    const model = { GENERATOR_MODEL_DIR: fixture.modelDir, GENERATOR_BASE_CONFIG: "" };
    stack = await startStack({
      generators: 2,
      generatorEnv: model,
      trainerEnv: { TRAINER_MODEL_DIR: fixture.modelDir, TRAINER_THREADS: "1" },
    });
  });
  after(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const runConfig = (run: string, steps: number) => grpoRun(run, dataset, steps);

  it("refuses an invalid config with 400 naming the field", async () => {
    const bad = { ...runConfig("bad", 4), algorithm: { name: "grpo", epsilon: "wide" } };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, bad);
    assert.equal(res.status, 400);
    const body = trainerErrorBodySchema.parse(await res.json());
    assert.equal(body.error.code, "invalid_config");
    assert.match(body.error.message, /^algorithm\.epsilon: /);
    const missing = await postJson(`${stack.trainer.url}/v1/runs`, {
      ...runConfig("bad", 4),
      dataset: { path: "/nope.jsonl" },
    });
    assert.equal(missing.status, 400);
    assert.match(trainerErrorBodySchema.parse(await missing.json()).error.message, /^dataset\.path: /);
  });

  it("a GRPO run learns, publishes every 2 steps, and both generators activate its versions", async () => {
    const res = await postJson(`${stack.trainer.url}/v1/runs`, runConfig("digits", 12));
    assert.equal(res.status, 201, await res.clone().text());
    const events = await follow(`${stack.trainer.url}/v1/runs/digits/events`);
    const status = events.at(-1);
    assert.ok(status?.type === "status", JSON.stringify(status));
    assert.equal(status.status, "completed", JSON.stringify(status));

    const steps = events.filter((e) => e.type === "step");
    assert.deepEqual(
      steps.map((e) => e.step),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const published = events.filter((e) => e.type === "published").map((e) => e.version);
    assert.deepEqual(published, [1, 2, 3, 4, 5, 6, 7], "the initial adapter, then one version per 2 steps");
    // Every step sampled from the newest version, published at most one step before it.
    for (const e of steps) {
      assert.equal(e.metrics?.version, Math.floor(((e.step ?? 0) - 1) / 2) + 1);
      assert.ok((e.metrics?.staleness ?? 9) <= 1);
    }
    const reward = (from: number, to: number) => meanReward(steps, from, to);
    assert.ok(reward(9, 12) >= 2 * reward(0, 3), `reward ${reward(0, 3)} → ${reward(9, 12)}`);

    for (const g of stack.generators) await stack.waitActive(g, "digits", 7, 30_000);
    const info = runInfoSchema.parse(
      await (
        await fetch(`${stack.trainer.url}/v1/runs/digits`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json(),
    );
    assert.equal(info.status, "completed");
    assert.equal(info.version, 7);
    // The run's last metrics carry TRL's GRPO names, frac_reward_zero_std (a share of prompts) among them.
    const zeroStd = info.metrics?.frac_reward_zero_std;
    assert.ok(typeof zeroStd === "number" && zeroStd >= 0 && zeroStd <= 1, JSON.stringify(info.metrics));
  });

  it("online DPO and SFT runs complete over REST, publish, and move their objectives", async () => {
    const dpo = {
      ...runConfig("pairs", 8),
      algorithm: { name: "online_dpo", beta: 0.1 },
      microBatch: 8,
    };
    let res = await postJson(`${stack.trainer.url}/v1/runs`, dpo);
    assert.equal(res.status, 201, await res.clone().text());
    let events = await follow(`${stack.trainer.url}/v1/runs/pairs/events`);
    assert.equal(finalStatus(events), "completed", JSON.stringify(events.at(-1)));
    assert.deepEqual(
      events.filter((e) => e.type === "published").map((e) => e.version),
      [1, 2, 3, 4, 5],
    );
    const margins = events.filter((e) => e.type === "step").map((e) => e.metrics?.margin ?? Number.NaN);
    // Step 1's policy is the reference (B = 0), so every implicit reward margin is exactly zero;
    // trained on pairs ranked by reward, the policy then favours the chosen samples.
    assert.equal(margins[0], 0);
    const late = margins.slice(4).reduce((a, b) => a + b, 0) / 4;
    assert.ok(late > 0, `DPO margins ${margins}`);

    const sftData = join(work, "sft.jsonl");
    writeFileSync(
      sftData,
      Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `q${i}:`, completion: "12345" })).join(
        "\n",
      ),
    );
    const sft = { ...runConfig("copy", 6), algorithm: { name: "sft" }, dataset: { path: sftData } };
    res = await postJson(`${stack.trainer.url}/v1/runs`, sft);
    assert.equal(res.status, 201, await res.clone().text());
    events = await follow(`${stack.trainer.url}/v1/runs/copy/events`);
    assert.equal(finalStatus(events), "completed", JSON.stringify(events.at(-1)));
    const losses = events.filter((e) => e.type === "step").map((e) => e.metrics?.loss ?? Number.NaN);
    assert.equal(losses.length, 6);
    assert.ok((losses.at(-1) ?? 0) < 0.5 * (losses[0] ?? 0), `SFT losses ${losses}`);
  });

  it("an RLOO run (k completions per prompt, leave-one-out baseline) trains and publishes; k < 2 is a 400", async () => {
    const low = await postJson(`${stack.trainer.url}/v1/runs`, {
      ...runConfig("loo", 4),
      algorithm: { name: "rloo", k: 1 },
    });
    assert.equal(low.status, 400);
    const refused = trainerErrorBodySchema.parse(await low.json());
    assert.equal(refused.error.code, "invalid_config");
    assert.match(refused.error.message, /^algorithm\.k: RLOO needs k ≥ 2/);

    const res = await postJson(`${stack.trainer.url}/v1/runs`, {
      ...runConfig("loo", 4),
      algorithm: { name: "rloo", k: 4 },
    });
    assert.equal(res.status, 201, await res.clone().text());
    const events = await follow(`${stack.trainer.url}/v1/runs/loo/events`);
    assert.equal(finalStatus(events), "completed", JSON.stringify(events.at(-1)));
    const steps = events.filter((e) => e.type === "step");
    assert.deepEqual(
      steps.map((e) => e.step),
      [1, 2, 3, 4],
    );
    for (const e of steps) assert.ok(Number.isFinite(e.metrics?.loss), JSON.stringify(e.metrics));
    // Rewards differ within some group, so some leave-one-out advantage, and the gradient, is not 0.
    assert.ok(
      steps.some((e) => (e.metrics?.grad_norm ?? 0) > 0),
      `no step moved the adapter: ${JSON.stringify(steps.map((e) => e.metrics))}`,
    );
    assert.deepEqual(
      events.filter((e) => e.type === "published").map((e) => e.version),
      [1, 2, 3],
    );
    for (const g of stack.generators) await stack.waitActive(g, "loo", 3, 30_000);
  });

  it("a run sampling from the two generators gets every rollout from the exact version it names", async () => {
    const config = {
      ...runConfig("fleet", 4),
      publishEvery: 1,
      generators: { urls: stack.generators.map((g) => g.url), timeoutMs: 30_000, retries: 1 },
    };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    const events = await follow(`${stack.trainer.url}/v1/runs/fleet/events`);
    assert.equal(finalStatus(events), "completed", JSON.stringify(events.at(-1)));
    const steps = events.filter((e) => e.type === "step");
    // Version 1 is the initial adapter; after every step the next one is published and sampled.
    assert.deepEqual(
      steps.map((e) => [e.step, e.metrics?.version, e.metrics?.staleness]),
      [1, 2, 3, 4].map((s) => [s, s, 0]),
    );
    // The generators answered for those versions (a mismatch fails the step), so they hold them.
    const seen = await Promise.all(stack.generators.map((g) => stack.adapters(g)));
    for (const a of seen) {
      const versions = a.data.filter((r) => r.run === "fleet").map((r) => r.version);
      assert.ok(
        [1, 2, 3, 4].every((v) => versions.includes(v)),
        `generator knows fleet@${versions}`,
      );
    }
  });

  it("a GRPO run sampling from the generators learns: its groups' choices differ, the reward doubles", async () => {
    // One prompt per generator per step, all 16 choices in one request: each generator prefills and
    // decodes the same batch on every run, so its samples, and the run, replay exactly (two
    // requests racing for one generator's batch change its float sums, then its samples).
    const config = {
      ...runConfig("fleet-learns", 16),
      algorithm: { name: "grpo", numGenerations: 16, lossType: "dapo" },
      promptsPerStep: 2,
      generators: { urls: stack.generators.map((g) => g.url), timeoutMs: 30_000, retries: 1 },
    };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    const events = await follow(`${stack.trainer.url}/v1/runs/fleet-learns/events`);
    assert.equal(finalStatus(events), "completed", JSON.stringify(events.at(-1)));
    const steps = events.filter((e) => e.type === "step");
    assert.equal(steps.length, 16);
    // With β = 0, GRPO's gradient is exactly 0 when each group's rewards are all equal, as they
    // are when a generator samples every choice of a request alike (session 17's seed bug).
    // frac_reward_zero_std says so: 1 is a step whose every group was alike.
    for (const e of steps) {
      assert.ok((e.metrics?.grad_norm ?? 0) > 0, `step ${e.step}: ${JSON.stringify(e.metrics)}`);
      assert.ok((e.metrics?.frac_reward_zero_std ?? 1) < 1, `step ${e.step}: ${JSON.stringify(e.metrics)}`);
    }
    const reward = (from: number, to: number) => meanReward(steps, from, to);
    assert.ok(reward(13, 16) >= 2 * reward(0, 3), `reward ${reward(0, 3)} → ${reward(13, 16)}`);
  });

  it("resumes after SIGKILL: contiguous versions, all in the history, the lost steps redone after a resumed event", async () => {
    const res = await postJson(`${stack.trainer.url}/v1/runs`, runConfig("resume", 10));
    assert.equal(res.status, 201, await res.clone().text());
    const controller = new AbortController();
    let checkpointStep = 0;
    await follow(
      `${stack.trainer.url}/v1/runs/resume/events`,
      (e) => {
        if (e.type === "checkpoint" && (e.step ?? 0) >= 4 && checkpointStep === 0) {
          checkpointStep = e.step ?? 0;
          void stack.trainer.kill();
          controller.abort();
        }
      },
      controller.signal,
    ).catch((e: Error) => assert.equal(e.name, "AbortError"));
    assert.ok(checkpointStep >= 4);
    await stack.trainer.kill();
    const trainer = await stack.startTrainer();
    const events = await follow(`${trainer.url}/v1/runs/resume/events`);
    assert.equal(finalStatus(events), "completed", JSON.stringify(events.at(-1)));
    // Checkpoints come every 2 steps, so the resumed run starts right after an even step it had
    // checkpointed, at or after the one seen before the kill. The history keeps the steps before
    // the kill, then says so with a `resumed` event, then redoes the lost steps under new ids.
    const resumed = await trainer.waitForLog((l) => l.msg === "resumed from checkpoint");
    const from = Number(resumed.step);
    assert.ok(
      from >= checkpointStep && from % 2 === 0,
      `resumed after step ${from}, checkpoint ${checkpointStep}`,
    );
    const mark = events.findIndex((e) => e.type === "resumed");
    assert.ok(mark > 0, "the history records the resume");
    const resumedEvent = events[mark];
    assert.ok(resumedEvent?.type === "resumed");
    assert.equal(resumedEvent.step, from);
    const kept = events
      .slice(0, mark)
      .filter((e) => e.type === "step")
      .filter((e) => e.step <= from);
    assert.deepEqual(
      [...kept, ...events.slice(mark).filter((e) => e.type === "step")].map((e) => e.step),
      Array.from({ length: 10 }, (_, i) => i + 1),
      "every step up to the checkpoint, then every step after it once",
    );
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: events.length }, (_, i) => i + 1),
      "ids contiguous from 1",
    );
    const versions = runVersionsSchema.parse(
      await (await fetch(`${trainer.url}/v1/runs/resume/versions`)).json(),
    );
    const numbers = versions.versions.map((v) => v.version);
    assert.deepEqual(
      numbers,
      Array.from({ length: numbers.length }, (_, i) => i + 1),
      "contiguous from 1",
    );
    assert.deepEqual(
      events.flatMap((e) => (e.type === "published" ? [e.version] : [])),
      numbers,
      "the history names every version the store lists, those of the lost steps included",
    );
  });
});
