/**
 * RLOO, REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE
 * Style Optimization for Learning from Human Feedback in LLMs", arXiv:2402.14740, eq. 6; TRL's
 * `RLOOTrainer`): k completions per prompt, each one's baseline the mean reward of the other
 * k − 1, and the plain REINFORCE gradient of the whole sequence's log-probability:
 *
 *   A_i = r_i − 1/(k−1) · Σ_{j≠i} r_j
 *   loss = −1/N · Σ_i A_i · Σ_t log π(y_i,t | x_i, y_i,<t)      (N completions in the step)
 *
 * On-policy, one optimizer step per batch, no clipping and no reference model, so no parameter
 * but `k` is needed.
 */
import { fracRewardZeroStd } from "@loracast/shared/losses";
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
  name: z.literal("rloo"),
  /** Completions per prompt (the paper's k, TRL's `rloo_k`); the baseline needs at least one other. */
  k: z
    .number()
    .int()
    .min(2, "RLOO needs k ≥ 2: each completion's baseline is the mean reward of the other k − 1")
    .default(2),
});

/** An RLOO run's `algorithm` config, defaults filled in. */
type RlooConfig = z.output<typeof schema>;

/**
 * Leave-one-out advantages over consecutive groups of `k` rewards: r_i minus the mean of the
 * group's other rewards. NaN rewards (samples an HTTP reward skipped) get advantage 0 and are
 * left out of the others' baselines; a sample with no other rewarded sample in its group gets 0.
 * Throws RangeError when `rewards` is not a whole number of groups.
 */
export function leaveOneOutAdvantages(rewards: readonly number[], k: number): Float64Array {
  if (!(k >= 2) || rewards.length % k !== 0) {
    throw new RangeError(`${rewards.length} rewards do not form groups of ${k}`);
  }
  const out = new Float64Array(rewards.length);
  for (let g = 0; g < rewards.length; g += k) {
    const group = rewards.slice(g, g + k);
    const valid = group.filter((r) => !Number.isNaN(r));
    const sum = valid.reduce((a, b) => a + b, 0);
    for (const [i, r] of group.entries()) {
      const others = valid.length - 1;
      out[g + i] = Number.isNaN(r) || others === 0 ? 0 : r - (sum - r) / others;
    }
  }
  return out;
}

async function gradients(ctx: StepContext, alg: RlooConfig, samples: StepSample[]): Promise<GradientResult> {
  const { session, params, now } = ctx;
  const invT = 1 / ctx.sampling.temperature;
  const rewards = samples.map((s) => s.reward);
  const advantages = leaveOneOutAdvantages(rewards, alg.k);
  const phases: Record<string, number> = {};
  const grads = new Map<string, Float32Array>();
  const feeds = params.feeds();
  let loss = 0;
  let trained = 0;
  let offset = 0;
  for (const part of chunks(samples, ctx.microBatch)) {
    const { batch, tokens } = packBatch(part);
    // dLoss/dLogprob of every counted token of completion i is −A_i / N; the loss is linear in
    // the log-probabilities, so the one backward pass also gives what the loss is computed from.
    const seeds = Float32Array.from(
      tokens.seq,
      (s, t) => (-(tokens.mask[t] ?? 0) * (advantages[offset + s] ?? 0)) / samples.length,
    );
    const done = timed(phases, "train", now);
    const out = await session.backward(batch, feeds, seeds, invT);
    done();
    params.gradients(out.grads, grads);
    loss += seeds.reduce((a, g, t) => a + g * (out.logprobs[t] ?? 0), 0);
    trained += countedTokens(tokens.mask);
    offset += part.length;
  }
  // TRL's RLOOTrainer logs frac_reward_zero_std too: a group of k equal rewards has all-zero
  // leave-one-out advantages, and a step of only such groups learns nothing.
  return {
    loss,
    grads,
    trainedTokens: trained,
    metrics: { frac_reward_zero_std: fracRewardZeroStd(rewards, alg.k) },
    phases,
  };
}

/** REINFORCE Leave-One-Out: `{"name": "rloo", "k": 4}`. */
export const rloo: Algorithm<typeof schema> = {
  name: "rloo",
  schema,
  rollouts: true,
  rewardsFor: "RLOO's advantages",
  samplesPerPrompt: (c) => c.k,
  masked: () => false,
  gradients,
};
