/**
 * The run loop over fakes (training session, rollouts, HTTP rewards through a fake fetch, clock)
 * and the real checkpoint store on an in-memory object store: the order of a step's phases, the
 * publish and checkpoint cadences, and where a resumed run picks up.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { LoraFeeds } from "@loracast/shared/runtime";
import { MemoryObjectStore } from "@loracast/shared/store";
import { ALLOCATOR_OVERHEAD, activationBytes } from "@loracast/shared/training";
import type { PublishResult } from "../publisher.ts";
import { CheckpointStore } from "./checkpoints.ts";
import { runConfigSchema } from "./config.ts";
import type { Example } from "./dataset.ts";
import type { Rollout, RolloutSource } from "./rollouts.ts";
import { RunLoop, type RunLoopDeps } from "./run-loop.ts";
import { runLora } from "./run-plan.ts";
import { FakeSession, silentLogger, tickingClock } from "./testing/fakes.ts";

const CONFIG = {
  run: "unit",
  seed: 4,
  algorithm: { name: "rloo", k: 2 },
  dataset: { path: "/unused.jsonl" },
  rewards: [{ type: "http", url: "http://reward.test/score", retries: 0 }],
  lora: { r: 2, alpha: 2, targetModules: ["q_proj"] },
  optimizer: { lr: 0.01 },
  steps: 4,
  promptsPerStep: 2,
  microBatch: 8,
  sampling: { maxTokens: 4 },
  publishEvery: 2,
  checkpointEvery: 2,
};

/**
 * A loop over fakes; `trace` gets one line per phase in the order they happen. Completion i of a
 * prompt is i + 1 tokens long and its reward its length, so the leave-one-out advantages differ.
 */
function harness(
  overrides: Record<string, unknown>,
  shared: { checkpoints: CheckpointStore; published: Map<string, number> },
  data: Example[] = DATA,
  memoryBudgetBytes = 2 ** 30,
) {
  const trace: string[] = [];
  const metrics: Record<string, number | null>[] = [];
  const config = runConfigSchema.parse({ ...CONFIG, ...overrides });
  const session = new FakeSession();
  const backward = session.backward.bind(session);
  session.backward = (...args) => {
    trace.push("gradients");
    return backward(...args);
  };
  // The feeds the probe scored and those offered to the rollouts, in order.
  const feeds = { scored: [] as LoraFeeds[], offered: [] as LoraFeeds[] };
  const score = session.score.bind(session);
  session.score = (batch, f, ...rest) => {
    feeds.scored.push(f);
    return score(batch, f, ...rest);
  };
  const lora = runLora(config, session.spec);
  assert.ok(lora.ok);
  const rollouts: RolloutSource = {
    offer: (version, f) => {
      trace.push(`offer v${version}`);
      feeds.offered.push(f);
    },
    generate: async (req) => {
      trace.push(`rollout v${req.version}`);
      return req.prompts.flatMap((_, promptIndex) =>
        Array.from(
          { length: req.n },
          (_, i): Rollout => ({
            promptIndex,
            completion: Array.from({ length: i + 1 }, (_, t) => 40 + t),
            logprobs: Array.from({ length: i + 1 }, () => -1),
            finishReason: "stop",
            version: req.version,
          }),
        ),
      );
    },
  };
  let rewardCalls = 0;
  const deps: RunLoopDeps = {
    session,
    tokenizer: {
      encode: (text) => [...text].map((c) => (c.charCodeAt(0) % 50) + 3),
      decode: (ids) => ids.map((id) => String.fromCharCode(id + 40)).join(""),
      stopTokenIds: [2],
    },
    rollouts,
    publish: async (_run, files) => {
      trace.push("publish");
      const sha256 = createHash("sha256").update(files.weights).digest("hex");
      // The loop's own hash (a worker's, over the same bytes) names the blob the publisher uploads.
      assert.equal(await files.sha256, sha256);
      const version = Math.max(0, ...shared.published.values()) + 1;
      shared.published.set(sha256, version);
      return { run: config.run, version, sha256 } as PublishResult;
    },
    checkpoints: {
      save: async (run, c) => {
        trace.push(`checkpoint ${c.state.step}`);
        return shared.checkpoints.save(run, c);
      },
      latest: (run) => shared.checkpoints.latest(run),
    },
    publishedWeights: async () => new Map(shared.published),
    clock: tickingClock(),
    memoryBudgetBytes,
    log: silentLogger,
    fetch: async (_url, init) => {
      if (rewardCalls++ % (2 * config.promptsPerStep) === 0) trace.push("reward");
      const { completion } = JSON.parse(String(init?.body)) as { completion: string };
      return Response.json({ reward: completion.length });
    },
    emit: (e) => {
      if (e.type === "step") metrics.push(e.metrics);
      trace.push(e.type === "step" ? `step ${e.step} (v${e.metrics.version})` : e.type);
    },
  };
  return { loop: new RunLoop({ config, lora: lora.value, data }, deps), trace, metrics, feeds };
}

const DATA: Example[] = [
  { prompt: "ab", answer: null, completion: null },
  { prompt: "cd", answer: null, completion: null },
  { prompt: "ef", answer: null, completion: null },
];

const fresh = () => ({ checkpoints: new CheckpointStore(new MemoryObjectStore()), published: new Map() });

describe("RunLoop", () => {
  it("a step is rollout → reward → gradients → optimizer; publishes and checkpoints on their cadences", async () => {
    const { loop, trace } = harness({}, fresh());
    assert.deepEqual(await loop.restore(), { step: 0, version: 0 });
    await loop.run(new AbortController().signal);
    const step = (n: number, v: number) => [`rollout v${v}`, "reward", "gradients", `step ${n} (v${v})`];
    assert.deepEqual(trace, [
      "publish",
      "offer v1",
      "published",
      ...step(1, 1),
      ...step(2, 1),
      "publish",
      "offer v2",
      "published",
      "checkpoint 2",
      "checkpoint",
      ...step(3, 2),
      ...step(4, 2),
      "publish",
      "offer v3",
      "published",
      "checkpoint 4",
      "checkpoint",
    ]);
  });

  it("probes each version with the very feeds it then offers to the rollouts, made once per publish", async () => {
    const { loop, trace, feeds } = harness({ algorithm: { name: "rloo", k: 2 }, steps: 4 }, fresh());
    await loop.run(new AbortController().signal);
    const publishes = trace.filter((t) => t === "publish").length;
    assert.equal(publishes, 3);
    assert.equal(feeds.offered.length, publishes);
    // Every offered set was the one a probe scored just before (the other scores are the steps').
    for (const offered of feeds.offered) assert.ok(feeds.scored.includes(offered));
    assert.equal(new Set(feeds.offered).size, publishes, "a new set per version");
  });

  it("without a microBatch, sizes each step's micro-batch by the memory budget", async () => {
    // Prompts are 2 tokens, completions 1 and 2 (rloo k = 2): the longest sequence is 4 tokens, 2 scored.
    const probe = new FakeSession();
    const ranks = 2 * probe.spec.dims.numLayers; // r = 2 on q_proj of every layer
    const perSequence = activationBytes(probe.spec.dims, ranks, 4, 2) * ALLOCATOR_OVERHEAD;
    for (const [budget, expected, passes] of [
      [3.5 * perSequence, 3, 2],
      [0.5 * perSequence, 1, 4],
      // A budget for 100 sequences: one pass of the step's 4, reported as 4.
      [100 * perSequence, 4, 1],
    ] as const) {
      const { loop, trace, metrics } = harness({ microBatch: null, steps: 1 }, fresh(), DATA, budget);
      await loop.run(new AbortController().signal);
      assert.deepEqual(
        metrics.map((m) => m.micro_batch),
        [expected],
      );
      assert.equal(trace.filter((l) => l === "gradients").length, passes, `budget ${budget}`);
    }
    // An explicit microBatch overrides the budget.
    const fixed = harness({ microBatch: 2, steps: 1 }, fresh(), DATA, 0.5 * perSequence);
    await fixed.loop.run(new AbortController().signal);
    assert.deepEqual(
      fixed.metrics.map((m) => m.micro_batch),
      [2],
    );
  });

  it("reports rewards of rollouts only: an SFT step has none (not 0)", async () => {
    const rloo = harness({}, fresh());
    await rloo.loop.run(new AbortController().signal);
    assert.ok(rloo.metrics.every((m) => typeof m.reward_mean === "number" && "rewards_skipped" in m));
    const withCompletions = DATA.map((d) => ({ ...d, completion: "gh" }));
    const sft = harness({ algorithm: { name: "sft" }, rewards: [] }, fresh(), withCompletions);
    await sft.loop.run(new AbortController().signal);
    assert.equal(sft.metrics.length, CONFIG.steps);
    for (const m of sft.metrics) {
      assert.deepEqual(
        ["reward_mean", "reward_std", "rewards_skipped"].filter((k) => k in m),
        [],
        JSON.stringify(m),
      );
      assert.equal(typeof m.loss, "number");
    }
  });

  it("resumes after its newest checkpoint: redoes the later steps and adopts what they published before", async () => {
    const shared = fresh();
    // The first attempt checkpoints at step 3 and publishes at steps 2 and 4, then stops at step 5.
    const first = harness({ steps: 6, checkpointEvery: 3 }, shared);
    await first.loop.restore();
    const stop = new AbortController();
    const emitted = first.trace;
    const push = emitted.push.bind(emitted);
    emitted.push = (...lines) => {
      if (lines.includes("step 4 (v2)")) stop.abort();
      return push(...lines);
    };
    await assert.rejects(first.loop.run(stop.signal), { name: "AbortError" });
    assert.deepEqual([...shared.published.values()], [1, 2, 3]);

    const second = harness({ steps: 6, checkpointEvery: 3 }, shared);
    assert.deepEqual(await second.loop.restore(), { step: 3, version: 2 });
    await second.loop.run(new AbortController().signal);
    assert.deepEqual(second.trace, [
      // Off the publish cadence: version 2 (the checkpoint's copy) is offered, nothing published.
      "offer v2",
      "rollout v2",
      "reward",
      "gradients",
      "step 4 (v2)",
      // Step 4 comes out as the first attempt's version 3, byte for byte: adopted, not published.
      "offer v3",
      "rollout v3",
      "reward",
      "gradients",
      "step 5 (v3)",
      "rollout v3",
      "reward",
      "gradients",
      "step 6 (v3)",
      "publish",
      "offer v4",
      "published",
      "checkpoint 6",
      "checkpoint",
    ]);
  });

  it("fails the run (non_finite) after maxNonFiniteSteps consecutive skipped steps", async () => {
    const { loop, trace } = harness({ maxNonFiniteSteps: 2, optimizer: { lr: 1e39 } }, fresh());
    await loop.restore();
    await assert.rejects(loop.run(new AbortController().signal), (e: Error & { code?: string }) => {
      assert.equal(e.code, "non_finite");
      assert.match(e.message, /2 consecutive non-finite steps \(maxNonFiniteSteps = 2\)/);
      return true;
    });
    assert.deepEqual(
      trace.filter((l) => l === "skipped"),
      ["skipped", "skipped"],
    );
  });
});
