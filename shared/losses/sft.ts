/** Supervised fine-tuning on given completions: the mean negative log-likelihood of masked tokens. */
import { checkLengths, type LossResult, type ScoredTokens } from "./tokens.ts";

/**
 * The SFT loss, mean −ℓ over the masked tokens of the micro-batch (TRL's `SFTTrainer` with
 * completion-only loss), divided by `gradientAccumulationSteps`. `logprobs`: float32 [k], log p of each
 * scored token. Returns the loss and its gradient, −mask/(n·GA) per token with n = Σ mask (at least 1).
 * Throws `RangeError` when lengths disagree (`checkLengths`).
 */
export function sftLoss(
  tokens: ScoredTokens,
  logprobs: Float32Array,
  gradientAccumulationSteps = 1,
): LossResult {
  checkLengths(tokens, { logprobs });
  const n = Math.max(
    tokens.mask.reduce((a, b) => a + b, 0),
    1,
  );
  const scale = 1 / (n * gradientAccumulationSteps);
  let loss = 0;
  const grad = Float32Array.from(tokens.mask, (m, t) => {
    loss -= m * (logprobs[t] ?? 0) * scale;
    return -m * scale;
  });
  return { loss, grad };
}
