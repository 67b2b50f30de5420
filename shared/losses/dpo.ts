/**
 * Online DPO as TRL computes it (`trl/experimental/online_dpo/online_dpo_trainer.py`; Guo et al. 2024,
 * "Direct Language Model Alignment from Online AI Feedback", arXiv:2402.04792): per pair, h = (Σℓ_chosen − Σℓ_rejected) −
 * (the same under the reference); `sigmoid`: mean −log σ(βh); `ipo`: mean (h − 1/(2β))². Sums run
 * over each completion's mask; log-probabilities are untempered.
 */
import { checkLengths, type LossResult, type ScoredTokens } from "./tokens.ts";

export type DpoLossType = "sigmoid" | "ipo";

export interface DpoInput {
  tokens: ScoredTokens;
  logprobs: Float32Array;
  refLogprobs: Float32Array;
  /** Sequence indices of each preference pair. */
  pairs: readonly { chosen: number; rejected: number }[];
  beta: number;
  lossType: DpoLossType;
}

export interface DpoResult extends LossResult {
  /** Share of pairs whose implicit reward margin βh is positive. */
  accuracy: number;
  /** Mean βh over pairs. */
  margin: number;
}

/** log σ(x), stable for large |x|. */
const logSigmoid = (x: number) => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

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
