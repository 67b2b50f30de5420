/**
 * GRPO as TRL's `GRPOTrainer` runs it (trl/trainer/grpo_trainer.py): `numGenerations` completions
 * per prompt, group-normalized advantages, the clipped surrogate with TRL's four loss types, an
 * optional k3 KL to the base (β), `numIterations` optimizer steps per generation batch, and
 * truncated importance sampling against the sampler's log-probabilities. The loss itself is
 * shared/losses/grpo.ts. Defaults follow TRL's `GRPOConfig`.
 */
import { fracRewardZeroStd, groupAdvantages, grpoLoss } from "@loracast/shared/losses";
import { baseFeeds } from "@loracast/shared/runtime";
import { packBatch } from "@loracast/shared/training";
import { z } from "zod";
import {
  type Algorithm,
  chunks,
  countedTokens,
  type GradientResult,
  type StepContext,
  type StepSample,
  timed,
} from "./algorithm.ts";

const schema = z.strictObject({
  name: z.literal("grpo"),
  numGenerations: z.number().int().min(2).default(8),
  lossType: z.enum(["grpo", "bnpo", "dr_grpo", "dapo"]).default("dapo"),
  scaleRewards: z.enum(["group", "batch", "none"]).default("group"),
  epsilon: z.number().positive().default(0.2),
  epsilonHigh: z.number().positive().nullable().default(null),
  delta: z.number().gt(1).nullable().default(null),
  beta: z.number().nonnegative().default(0),
  numIterations: z.number().int().positive().default(1),
  maskTruncatedCompletions: z.boolean().default(false),
  /** Truncated importance sampling against the sampler's log-probabilities; null turns it off. */
  importanceSamplingCap: z.number().gt(1).nullable().default(3),
});

/** A GRPO run's `algorithm` config, defaults filled in. */
type GrpoConfig = z.output<typeof schema>;

async function gradients(ctx: StepContext, alg: GrpoConfig, samples: StepSample[]): Promise<GradientResult> {
  const { session, params, now } = ctx;
  const invT = 1 / ctx.sampling.temperature;
  const rewards = samples.map((s) => s.reward);
  const advantages = groupAdvantages(rewards, alg.numGenerations, alg.scaleRewards);
  const micro = chunks(
    samples.map((s, i) => ({ s, a: advantages[i] ?? 0 })),
    ctx.microBatch,
  ).map((part) => ({ ...packBatch(part.map((p) => p.s)), part }));
  const items = micro.reduce((n, m) => n + countedTokens(m.tokens.mask), 0);
  const phases: Record<string, number> = {};
  const feeds = params.feeds();
  const needOld = alg.numIterations > 1 || alg.importanceSamplingCap !== null || alg.beta !== 0;

  const ref: Float32Array[] = [];
  const old: (Float32Array | null)[] = [];
  for (const m of micro) {
    if (alg.beta !== 0) {
      const done = timed(phases, "reference", now);
      ref.push(await session.score(m.batch, baseFeeds(session.spec), invT));
      done();
    }
    const done = timed(phases, "old_logprobs", now);
    old.push(needOld ? await session.score(m.batch, feeds, invT) : null);
    done();
  }

  let grads = new Map<string, Float32Array>();
  let loss = 0;
  let clip = 0;
  let kl = 0;
  for (let it = 0; it < alg.numIterations; it++) {
    if (it > 0) {
      ctx.optimize(grads);
      grads = new Map();
      loss = 0;
    }
    const current = it === 0 ? feeds : params.feeds();
    for (const [i, m] of micro.entries()) {
      const o = old[i] ?? null;
      const sampler = m.part.flatMap((p) => p.s.samplerLogprobs ?? []);
      const isWeights =
        alg.importanceSamplingCap === null || o === null || sampler.length !== o.length
          ? null
          : Float32Array.from(o, (v, t) =>
              Math.min(Math.exp(v - (sampler[t] ?? v)), alg.importanceSamplingCap ?? 1),
            );
      let logprobs = o;
      if (logprobs === null || it > 0) {
        const done = timed(phases, "policy_logprobs", now);
        logprobs = it === 0 ? Float32Array.from(sampler) : await session.score(m.batch, current, invT);
        done();
      }
      const r = grpoLoss({
        tokens: m.tokens,
        logprobs,
        oldLogprobs: o,
        refLogprobs: alg.beta !== 0 ? (ref[i] ?? null) : null,
        advantages: Float64Array.from(m.part, (p) => p.a),
        isWeights,
        settings: {
          lossType: alg.lossType,
          epsilonLow: alg.epsilon,
          epsilonHigh: alg.epsilonHigh ?? alg.epsilon,
          delta: alg.delta,
          beta: alg.beta,
          maxCompletionLength: ctx.sampling.maxTokens,
          gradientAccumulationSteps: micro.length,
          itemsInGenerationBatch: items,
        },
      });
      const done = timed(phases, "train", now);
      const out = await session.backward(m.batch, current, r.grad, invT);
      done();
      params.gradients(out.grads, grads);
      loss += r.loss;
      clip += r.clipFraction / micro.length / alg.numIterations;
      kl += r.klMean / micro.length / alg.numIterations;
    }
  }
  return {
    loss,
    grads,
    trainedTokens: items * alg.numIterations,
    // TRL's frac_reward_zero_std: 1 is a step that learned nothing from its rewards (every group
    // alike), which the loss and reward curves alone do not show.
    metrics: {
      clip_fraction: clip,
      kl,
      frac_reward_zero_std: fracRewardZeroStd(rewards, alg.numGenerations),
    },
    phases,
  };
}

/** Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300). */
export const grpo: Algorithm<typeof schema> = {
  name: "grpo",
  schema,
  rollouts: true,
  rewardsFor: "GRPO's advantages",
  samplesPerPrompt: (c) => c.numGenerations,
  // TRL's mask_truncated_completions: a completion cut at maxTokens leaves the loss.
  masked: (c, finishReason) => c.maskTruncatedCompletions && finishReason === "length",
  gradients,
};
