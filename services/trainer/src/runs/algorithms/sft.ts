/**
 * Supervised fine-tuning on the dataset's completions (TRL's `SFTTrainer` with completion-only
 * loss): the mean negative log-likelihood of the completion tokens (shared/losses/sft.ts). No
 * rollouts, no rewards.
 */
import { sftLoss } from "@loracast/shared/losses";
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

const schema = z.strictObject({ name: z.literal("sft") });

async function gradients(ctx: StepContext, _alg: unknown, samples: StepSample[]): Promise<GradientResult> {
  const { session, params, now } = ctx;
  const phases: Record<string, number> = {};
  const grads = new Map<string, Float32Array>();
  const feeds = params.feeds();
  const micro = chunks(samples, ctx.microBatch);
  let loss = 0;
  let trained = 0;
  for (const part of micro) {
    const { batch, tokens } = packBatch(part);
    // SFT's seed does not depend on the log-probabilities, so one pass gives the gradient and
    // the log-probabilities the loss is then computed from.
    const { grad } = sftLoss(tokens, new Float32Array(tokens.seq.length), micro.length);
    const done = timed(phases, "train", now);
    const out = await session.backward(batch, feeds, grad);
    done();
    params.gradients(out.grads, grads);
    loss += sftLoss(tokens, out.logprobs, micro.length).loss;
    trained += countedTokens(tokens.mask);
  }
  return { loss, grads, trainedTokens: trained, metrics: {}, phases };
}

/** Supervised fine-tuning: every dataset line carries the `completion` trained on. */
export const sft: Algorithm<typeof schema> = {
  name: "sft",
  schema,
  rollouts: false,
  rewardsFor: null,
  samplesPerPrompt: () => 1,
  masked: () => false,
  gradients,
};
