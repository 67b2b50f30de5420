/**
 * Each algorithm's gradients on small hand-made batches, against a fake training session that
 * records the passes it is asked for and the per-token seeds (dLoss/dLogprob) it is given.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { peftKey } from "@loracast/shared/model-spec";
import { parseLoraConfig } from "@loracast/shared/peft";
import { createRng } from "@loracast/shared/random";
import { LoraParams } from "@loracast/shared/training";
import { FakeSession } from "../testing/fakes.ts";
import type { StepContext, StepSample } from "./algorithm.ts";
import { type AlgorithmConfig, algorithmConfigSchema, algorithmFor } from "./index.ts";
import { leaveOneOutAdvantages } from "./rloo.ts";

/** A step context over the fake session, with a rank-2 LoRA on q_proj; counts optimizer calls. */
function context(options: { microBatch?: number; temperature?: number } = {}) {
  const session = new FakeSession();
  const lora = parseLoraConfig({ peft_type: "LORA", r: 2, lora_alpha: 2, target_modules: ["q_proj"] });
  assert.ok(lora.ok);
  const params = LoraParams.init(session.spec, lora.value, createRng(1));
  let optimized = 0;
  const ctx: StepContext = {
    session,
    params,
    microBatch: options.microBatch ?? 16,
    sampling: { temperature: options.temperature ?? 1, maxTokens: 4 },
    now: () => 0,
    optimize: () => {
      optimized++;
    },
  };
  return { ctx, session, optimized: () => optimized };
}

/** A sampled completion of `length` tokens (ids 10, 11, …) with reward `reward`. */
function sample(length: number, reward: number, extra: Partial<StepSample> = {}): StepSample {
  return {
    prompt: [1, 2],
    completion: Array.from({ length }, (_, i) => 10 + i),
    samplerLogprobs: Array.from({ length }, () => -1),
    reward,
    ...extra,
  };
}

const config = (c: Record<string, unknown>): AlgorithmConfig => algorithmConfigSchema.parse(c);
/** The layer-0 q_proj A gradient: the fake session fills it with Σ seeds of each pass. */
const A_KEY = peftKey("model.layers.0.self_attn.q_proj", "A");

describe("RLOO", () => {
  it("leave-one-out advantages: r_i minus the mean of the other k − 1 rewards of its prompt", () => {
    assert.deepEqual([...leaveOneOutAdvantages([1, 0, 0, 1], 2)], [1, -1, -1, 1]);
    // k = 4: sum 12; 1 − 11/3, 2 − 10/3, 3 − 9/3, 6 − 6/3
    const a = leaveOneOutAdvantages([1, 2, 3, 6], 4);
    for (const [i, want] of [-8 / 3, -4 / 3, 0, 4].entries()) assert.ok(Math.abs((a[i] ?? 0) - want) < 1e-12);
    // A skipped (NaN) reward gets 0 and leaves the others' baselines; alone in its group, 0.
    assert.deepEqual([...leaveOneOutAdvantages([1, Number.NaN, 3], 3)], [-2, 0, 2]);
    assert.deepEqual([...leaveOneOutAdvantages([5, Number.NaN], 2)], [0, 0]);
    assert.throws(() => leaveOneOutAdvantages([1, 2, 3], 2), RangeError);
  });

  it("seeds each counted token with −A_i / N, micro-batch by micro-batch, at the sampling temperature", async () => {
    const { ctx, session } = context({ microBatch: 2, temperature: 0.5 });
    // Two prompts × k = 2: advantages [1, −1] for the first, [0, 0] for the second (equal rewards).
    const samples = [sample(2, 1), sample(3, 0), sample(2, 0.5), sample(3, 0.5)];
    const g = await algorithmFor(config({ name: "rloo", k: 2 })).gradients(ctx, samples);
    const passes = session.calls;
    assert.deepEqual(
      passes.map((c) => c.kind),
      ["backward", "backward"],
      "one pass per micro-batch, no reference",
    );
    assert.deepEqual(passes[0]?.seeds, [-0.25, -0.25, 0.25, 0.25, 0.25]);
    assert.deepEqual(
      passes[1]?.seeds?.map((x) => x === 0),
      [true, true, true, true, true],
      "the second micro-batch gets its own advantages (0: equal rewards)",
    );
    assert.equal(passes[0]?.invTemperature, 2);
    // TRL's RLOOTrainer metric: the second prompt's two rewards are equal, the first's differ.
    assert.deepEqual(g.metrics, { frac_reward_zero_std: 0.5 });
    // loss = Σ seed · logprob, every logprob −1 in the fake
    assert.ok(Math.abs(g.loss - -0.25) < 1e-6);
    assert.equal(g.trainedTokens, 10);
    assert.ok(Math.abs((g.grads.get(A_KEY)?.[0] ?? 0) - 0.25) < 1e-6, "gradients accumulate over passes");
  });

  it("takes k completions per prompt and refuses k < 2 naming the rule", () => {
    assert.equal(algorithmFor(config({ name: "rloo", k: 5 })).samplesPerPrompt, 5);
    assert.deepEqual(config({ name: "rloo" }), { name: "rloo", k: 2 });
    const low = algorithmConfigSchema.safeParse({ name: "rloo", k: 1 });
    assert.ok(!low.success);
    assert.match(low.error.issues[0]?.message ?? "", /RLOO needs k ≥ 2/);
  });
});

describe("GRPO", () => {
  it("on-policy with no KL: no extra passes, chosen completions pushed up and the others down", async () => {
    const { ctx, session, optimized } = context();
    const alg = config({ name: "grpo", numGenerations: 2, importanceSamplingCap: null });
    const g = await algorithmFor(alg).gradients(ctx, [sample(2, 1), sample(2, 0)]);
    assert.deepEqual(
      session.calls.map((c) => c.kind),
      ["backward"],
    );
    const seeds = session.calls[0]?.seeds ?? [];
    assert.ok(seeds.slice(0, 2).every((s) => s < 0) && seeds.slice(2).every((s) => s > 0), `${seeds}`);
    assert.equal(optimized(), 0);
    assert.deepEqual(Object.keys(g.metrics).sort(), ["clip_fraction", "frac_reward_zero_std", "kl"]);
    assert.equal(g.metrics.frac_reward_zero_std, 0, "the one group's rewards differ");
  });

  it("reports frac_reward_zero_std: the share of prompts whose completions all got the same reward", async () => {
    const alg = algorithmFor(config({ name: "grpo", numGenerations: 2, importanceSamplingCap: null }));
    // Four prompts: rewards [1, 0] and [0.5, 1] differ, [1, 1] and [0, 0] give no learning signal.
    const mixed = [
      [1, 0],
      [1, 1],
      [0.5, 1],
      [0, 0],
    ].flatMap((group) => group.map((r) => sample(2, r)));
    assert.equal((await alg.gradients(context().ctx, mixed)).metrics.frac_reward_zero_std, 0.5);
    // Every prompt's completions alike (the generator seed bug): all advantages 0, nothing learned.
    const { ctx, session } = context();
    const alike = [1, 1, 0, 0, 1, 1].map((r) => sample(2, r));
    const g = await alg.gradients(ctx, alike);
    assert.equal(g.metrics.frac_reward_zero_std, 1);
    assert.ok(
      session.calls.length > 0 && session.calls.every((c) => c.seeds?.every((x) => x === 0)),
      "every seed 0",
    );
  });

  it("β > 0 scores the base as the reference; numIterations μ takes μ − 1 optimizer steps inside", async () => {
    const { ctx, session, optimized } = context();
    const alg = config({ name: "grpo", numGenerations: 2, beta: 0.1, numIterations: 3 });
    const g = await algorithmFor(alg).gradients(ctx, [sample(2, 1), sample(2, 0)]);
    const kinds = session.calls.map((c) => `${c.kind}${c.base ? " (base)" : ""}`);
    assert.deepEqual(kinds, ["score (base)", "score", "backward", "score", "backward", "score", "backward"]);
    assert.equal(optimized(), 2);
    assert.equal(g.trainedTokens, 4 * 3);
  });

  it("masks truncated completions only with maskTruncatedCompletions", async () => {
    const masking = algorithmFor(config({ name: "grpo", maskTruncatedCompletions: true }));
    assert.equal(masking.masked("length"), true);
    assert.equal(masking.masked("stop"), false);
    assert.equal(algorithmFor(config({ name: "grpo" })).masked("length"), false);
    const { ctx, session } = context();
    await masking.gradients(ctx, [
      ...[sample(2, 1), sample(2, 0, { masked: true })],
      ...Array.from({ length: 6 }, () => sample(2, 0)),
    ]);
    const seeds = session.calls.at(-1)?.seeds ?? [];
    assert.deepEqual(seeds.slice(2, 4), [0, 0], "the masked completion has no gradient");
    assert.ok(seeds[0] !== 0);
  });
});

describe("online DPO", () => {
  it("ranks each pair by reward: the higher one is the chosen (first) row, against the base", async () => {
    const { ctx, session } = context();
    const alg = config({ name: "online_dpo" });
    // The first sample (1 token) loses to the second (2 tokens): the batch puts the second first.
    const g = await algorithmFor(alg).gradients(ctx, [sample(1, 0), sample(2, 1)]);
    const kinds = session.calls.map((c) => `${c.kind}${c.base ? " (base)" : ""}`);
    assert.deepEqual(kinds, ["score (base)", "score", "backward"]);
    assert.deepEqual(session.calls[2]?.targets, [10, 11, 10]);
    const seeds = session.calls[2]?.seeds ?? [];
    assert.ok((seeds[0] ?? 0) < 0 && (seeds[2] ?? 0) > 0, `chosen up, rejected down: ${seeds}`);
    assert.equal(g.metrics.margin, 0, "policy = reference: zero margin");
    assert.equal(algorithmFor(alg).samplesPerPrompt, 2);
  });
});

describe("SFT", () => {
  it("trains on dataset completions: mean NLL over every completion token", async () => {
    const sft = algorithmFor(config({ name: "sft" }));
    assert.equal(sft.rollouts, false);
    assert.equal(sft.rewardsFor, null);
    const { ctx, session } = context();
    const g = await sft.gradients(ctx, [sample(2, 0), sample(3, 0)]);
    assert.deepEqual(
      session.calls[0]?.seeds,
      Array.from({ length: 5 }, () => Math.fround(-1 / 5)),
    );
    assert.ok(Math.abs(g.loss - 1) < 1e-6, "every logprob −1: NLL 1");
    assert.equal(g.trainedTokens, 5);
  });
});
