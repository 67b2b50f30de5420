/**
 * Online DPO as TRL computes it (`trl/experimental/online_dpo/online_dpo_trainer.py`; Guo et al.
 * 2024, "Direct Language Model Alignment from Online AI Feedback", arXiv:2402.04792): per pair,
 * h = (Σℓ_chosen − Σℓ_rejected) − (the same under the reference); `sigmoid`: mean −log σ(βh); `ipo`:
 * mean (h − 1/(2β))². Sums run over each completion's mask; log-probabilities are untempered.
 */
import { checkLengths, type LossResult, type ScoredTokens } from "./tokens.ts";

/** TRL `OnlineDPOConfig.loss_type`: `sigmoid` (DPO, Rafailov et al. 2023) or `ipo` (Azar et al. 2023). */
export type DpoLossType = "sigmoid" | "ipo";

/**
 * One micro-batch of online DPO: both completions of each pair are sequences of `tokens`.
 * `logprobs` and `refLogprobs` are float32 [k], untempered log p under the policy and the reference
 * (the base with adapters off); `beta` is DPO's β (TRL default 0.1).
 */
export interface DpoInput {
  tokens: ScoredTokens;
  logprobs: Float32Array;
  refLogprobs: Float32Array;
  /** Sequence indices of each preference pair. */
  pairs: readonly { chosen: number; rejected: number }[];
  beta: number;
  lossType: DpoLossType;
}

/** The DPO loss and gradient, plus TRL's `rewards/accuracies` and `rewards/margins` metrics. */
export interface DpoResult extends LossResult {
  /** Share of pairs whose implicit reward margin βh is positive. */
  accuracy: number;
  /** Mean βh over pairs. */
  margin: number;
}

/** log σ(x), stable for large |x|. */
const logSigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * The online DPO loss of a micro-batch (TRL `OnlineDPOTrainer`): mean over pairs of −log σ(βh) or
 * (h − 1/(2β))², and dLoss/dℓ per token: ∓(β/P)·σ(−βh) (sigmoid) or ±(2/P)(h − 1/(2β)) (ipo) on the
 * chosen (+) and rejected (−) tokens' masks. Throws `RangeError` when there are no pairs or lengths
 * disagree.
 */
export function dpoLoss(input: DpoInput): DpoResult {
  const { tokens, logprobs, refLogprobs, pairs, beta, lossType } = input;
  checkLengths(tokens, { logprobs, refLogprobs });
  if (pairs.length === 0) throw new RangeError("DPO needs at least one pair");
  const sums = new Float64Array(tokens.sequences);
  tokens.seq.forEach((s, t) => {
    const m = tokens.mask[t] ?? 0;
    sums[s] = (sums[s] ?? 0) + m * ((logprobs[t] ?? 0) - (refLogprobs[t] ?? 0));
  });
  // dLoss/dh per pair, then spread over the pair's tokens with sign +1 (chosen) or −1 (rejected).
  const dSeq = new Float64Array(tokens.sequences);
  const P = pairs.length;
  let loss = 0;
  let correct = 0;
  let margin = 0;
  for (const { chosen, rejected } of pairs) {
    const h = (sums[chosen] ?? 0) - (sums[rejected] ?? 0);
    let dh: number;
    if (lossType === "sigmoid") {
      loss += -logSigmoid(beta * h) / P;
      dh = (-beta * sigmoid(-beta * h)) / P;
    } else {
      const e = h - 1 / (2 * beta);
      loss += (e * e) / P;
      dh = (2 * e) / P;
    }
    dSeq[chosen] = (dSeq[chosen] ?? 0) + dh;
    dSeq[rejected] = (dSeq[rejected] ?? 0) - dh;
    if (beta * h > 0) correct++;
    margin += (beta * h) / P;
  }
  const grad = Float32Array.from(tokens.seq, (s, t) => (tokens.mask[t] ?? 0) * (dSeq[s] ?? 0));
  return { loss, grad, accuracy: correct / P, margin };
}
