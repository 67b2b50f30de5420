/**
 * Online DPO as TRL's `OnlineDPOTrainer` runs it (trl/experimental/online_dpo): two completions
 * per prompt from the current policy, the higher reward chosen, the DPO loss (shared/losses/dpo.ts,
 * `sigmoid` or `ipo`) against the base as the reference. Defaults follow TRL's `OnlineDPOConfig`.
 */
import { dpoLoss } from "@loracast/shared/losses";
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
  name: z.literal("online_dpo"),
  beta: z.number().positive().default(0.1),
  lossType: z.enum(["sigmoid", "ipo"]).default("sigmoid"),
});

/** An online DPO run's `algorithm` config, defaults filled in. */
type OnlineDpoConfig = z.output<typeof schema>;

async function gradients(
  ctx: StepContext,
  alg: OnlineDpoConfig,
  samples: StepSample[],
): Promise<GradientResult> {
  const { session, params, now } = ctx;
  // samples come as (first, second) per prompt; the higher reward is chosen, ties go to the first.
  const pairs = chunks(samples, 2).map(([a, b]) => ((b?.reward ?? 0) > (a?.reward ?? 0) ? [b, a] : [a, b]));
  const phases: Record<string, number> = {};
  const grads = new Map<string, Float32Array>();
  const feeds = params.feeds();
  let loss = 0;
  let accuracy = 0;
  let margin = 0;
  let trained = 0;
  const micro = chunks(pairs, Math.max(1, Math.floor(ctx.microBatch / 2)));
  for (const part of micro) {
    const ordered = part.flatMap((p) => p as StepSample[]);
    const { batch, tokens } = packBatch(ordered);
    let done = timed(phases, "reference", now);
    const ref = await session.score(batch, baseFeeds(session.spec));
    done();
    done = timed(phases, "policy_logprobs", now);
    const logprobs = await session.score(batch, feeds);
    done();
    const r = dpoLoss({
      tokens,
      logprobs,
      refLogprobs: ref,
      pairs: part.map((_, i) => ({ chosen: 2 * i, rejected: 2 * i + 1 })),
      beta: alg.beta,
      lossType: alg.lossType,
    });
    const scale = part.length / pairs.length;
    done = timed(phases, "train", now);
    const out = await session.backward(
      batch,
      feeds,
      r.grad.map((g) => g * scale),
    );
    done();
    params.gradients(out.grads, grads);
    loss += r.loss * scale;
    accuracy += r.accuracy * scale;
    margin += r.margin * scale;
    trained += countedTokens(tokens.mask);
  }
  return { loss, grads, trainedTokens: trained, metrics: { accuracy, margin }, phases };
}

/** Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback", arXiv:2402.04792). */
export const onlineDpo: Algorithm<typeof schema> = {
  name: "online_dpo",
  schema,
  rollouts: true,
  rewardsFor: "online DPO's chosen/rejected pairs",
  samplesPerPrompt: () => 2,
  masked: () => false,
  gradients,
};
