/**
 * GRPO as TRL computes it (`trl/trainer/grpo_trainer.py`: `_generate_and_score_completions` for the
 * advantages, `_compute_loss` for the loss; Shao et al. 2024, "DeepSeekMath", arXiv:2402.03300):
 * group-normalized advantages, the clipped importance-ratio surrogate with ε_low/ε_high and optional
 * δ, an optional constant importance-sampling weight against the sampler's log-probabilities, β·KL
 * (k3) to the reference, and the four aggregations. The gradient is the exact derivative of the loss
 * computed here, including torch's rules at the clip bounds (clamp passes at the bounds, min splits
 * ties).
 */
import { checkLengths, type LossResult, type ScoredTokens, tokensPerSequence } from "./tokens.ts";

/** TRL `GRPOConfig.loss_type`: how per-token losses are aggregated (see `grpoLoss`). */
export type GrpoLossType = "grpo" | "bnpo" | "dr_grpo" | "dapo";
/** TRL `GRPOConfig.scale_rewards`: divide advantages by the group's std, the batch's, or not at all. */
export type ScaleRewards = "group" | "batch" | "none";

/**
 * The `GRPOConfig` fields the loss reads, camelCased: ε_low/ε_high clip the ratio to
 * [1 − ε_low, 1 + ε_high] (TRL `epsilon`, `epsilon_high`), β weighs the k3 KL to the reference.
 */
export interface GrpoSettings {
  lossType: GrpoLossType;
  epsilonLow: number;
  epsilonHigh: number;
  /** Upper bound on the unclipped ratio (two-sided clipping), or null. */
  delta: number | null;
  beta: number;
  /** dr_grpo's constant normalizer. */
  maxCompletionLength: number;
  gradientAccumulationSteps: number;
  /** dapo's normalizer: masked tokens in the whole generation batch, not just this micro-batch. */
  itemsInGenerationBatch: number;
}

/**
 * One micro-batch of GRPO: k scored tokens of `tokens.sequences` completions, per-token arrays
 * float32 [k], advantages float64 [sequences] (from `groupAdvantages`).
 */
export interface GrpoInput {
  tokens: ScoredTokens;
  /** [k] current policy log-probabilities. */
  logprobs: Float32Array;
  /** [k] log-probabilities of the policy that sampled (no gradient); null = on-policy, ratio 1. */
  oldLogprobs: Float32Array | null;
  /** [k] reference (base) log-probabilities; required when β ≠ 0. */
  refLogprobs: Float32Array | null;
  /** [sequences] one advantage per completion. */
  advantages: Float64Array;
  /** [k] constant importance-sampling weights (truncated IS against the sampler), or null. */
  isWeights: Float32Array | null;
  settings: GrpoSettings;
}

/** The GRPO loss and gradient, plus TRL's `clip_ratio` and `kl` metrics. */
export interface GrpoResult extends LossResult {
  /** Share of masked tokens whose ratio was clipped (low with A < 0, or high with A > 0). */
  clipFraction: number;
  /** Mean k3 KL over masked tokens (0 when β = 0 and no reference is given). */
  klMean: number;
}

/** Mean and Bessel-corrected std (as torch.std) of `rewards[from..to)`, NaN rewards skipped; NaN when too few. */
function rewardStats(rewards: ArrayLike<number>, from: number, to: number): { mean: number; std: number } {
  let n = 0;
  let sum = 0;
  for (let i = from; i < to; i++) {
    const r = rewards[i] ?? Number.NaN;
    if (!Number.isNaN(r)) {
      n++;
      sum += r;
    }
  }
  const mean = n > 0 ? sum / n : Number.NaN;
  let ss = 0;
  for (let i = from; i < to; i++) {
    const r = rewards[i] ?? Number.NaN;
    if (!Number.isNaN(r)) ss += (r - mean) ** 2;
  }
  return { mean, std: n > 1 ? Math.sqrt(ss / (n - 1)) : Number.NaN };
}

function checkGroups(rewards: ArrayLike<number>, groupSize: number): void {
  if (!(groupSize >= 1) || rewards.length % groupSize !== 0) {
    throw new RangeError(`${rewards.length} rewards do not form groups of ${groupSize}`);
  }
}

/**
 * One advantage per completion from rewards in consecutive groups of `groupSize`. NaN rewards are
 * skipped in the means and standard deviations (Bessel-corrected, as torch.std); a NaN advantage
 * becomes 0.
 */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  groupSize: number,
  scale: ScaleRewards,
): Float64Array {
  checkGroups(rewards, groupSize);
  const batch = rewardStats(rewards, 0, rewards.length);
  const out = new Float64Array(rewards.length);
  for (let g = 0; g < rewards.length; g += groupSize) {
    const group = rewardStats(rewards, g, g + groupSize);
    for (let i = g; i < g + groupSize; i++) {
      let a = (rewards[i] ?? Number.NaN) - group.mean;
      if (scale !== "none") a /= (scale === "group" ? group.std : batch.std) + 1e-4;
      out[i] = Number.isNaN(a) ? 0 : a;
    }
  }
  return out;
}

/** torch.isclose's default `atol`; against 0 its `rtol` term vanishes. */
const ZERO_STD_ATOL = 1e-8;

/**
 * TRL's `frac_reward_zero_std`: the share of groups (prompts) whose rewards have a standard
 * deviation of zero, in [0, 1]; their advantages are all 0, so they give the step no learning
 * signal. Zero as TRL tests it: `torch.isclose(std, 0)`, |std| ≤ 1e-8. Rewards come in consecutive
 * groups of `groupSize`; NaN rewards (skipped) are left out, as in `groupAdvantages`, and a group
 * with fewer than two rewards left counts as zero std (its advantages are 0 too; TRL sets the std of
 * a one-completion group to 0). Always the groups' own std, also where TRL's `scale_rewards="batch"`
 * tests the batch's. 0 for no rewards. Throws RangeError when the rewards are not whole groups.
 */
export function fracRewardZeroStd(rewards: ArrayLike<number>, groupSize: number): number {
  checkGroups(rewards, groupSize);
  const groups = rewards.length / groupSize;
  let zero = 0;
  for (let g = 0; g < rewards.length; g += groupSize) {
    const { std } = rewardStats(rewards, g, g + groupSize);
    if (Number.isNaN(std) || Math.abs(std) <= ZERO_STD_ATOL) zero++;
  }
  return groups === 0 ? 0 : zero / groups;
}

/** torch.clamp's gradient: 1 inside [lo, hi], bounds included, else 0. */
const passes = (x: number, lo: number, hi: number) => (x >= lo && x <= hi ? 1 : 0);

/**
 * The GRPO loss of a micro-batch and dLoss/dℓ per token (TRL `GRPOTrainer._compute_loss`): per token
 * −min(w·A, clamp(w, 1 − ε_low, 1 + ε_high)·A) with w = exp(ℓ − ℓ_old) (capped at δ when set), times
 * the IS weight, plus β·k3 KL; aggregated as `grpo` (mean of per-sequence means), `bnpo` (mean over
 * masked tokens), `dr_grpo` (÷ B·maxCompletionLength) or `dapo` (÷ tokens of the generation batch),
 * then ÷ gradientAccumulationSteps except for `dapo`. Throws `RangeError` when lengths disagree or β ≠ 0
 * without reference log-probabilities.
 */
export function grpoLoss(input: GrpoInput): GrpoResult {
  const { tokens, logprobs, oldLogprobs, refLogprobs, advantages, isWeights, settings: s } = input;
  checkLengths(tokens, { logprobs, oldLogprobs, refLogprobs, isWeights });
  if (advantages.length !== tokens.sequences) {
    throw new RangeError(`${advantages.length} advantages for ${tokens.sequences} sequences`);
  }
  if (s.beta !== 0 && refLogprobs === null) throw new RangeError("β ≠ 0 needs reference log-probabilities");
  const counts = tokensPerSequence(tokens);
  const masked = counts.reduce((a, b) => a + b, 0);
  const B = tokens.sequences;
  const GA = s.gradientAccumulationSteps;
  const weight = (seq: number): number => {
    switch (s.lossType) {
      case "grpo":
        return 1 / (B * Math.max(counts[seq] ?? 0, 1) * GA);
      case "bnpo":
        return 1 / (Math.max(masked, 1) * GA);
      case "dr_grpo":
        return 1 / (B * s.maxCompletionLength * GA);
      case "dapo":
        return 1 / Math.max(s.itemsInGenerationBatch, 1);
    }
  };

  const k = tokens.seq.length;
  const grad = new Float32Array(k);
  let loss = 0;
  let clipped = 0;
  let kl = 0;
  for (let t = 0; t < k; t++) {
    const m = tokens.mask[t] ?? 0;
    if (m === 0) continue;
    const seq = tokens.seq[t] ?? 0;
    const kappa = m * weight(seq);
    const A = advantages[seq] ?? 0;
    const l = logprobs[t] ?? 0;
    const w = oldLogprobs === null ? 1 : Math.exp(l - (oldLogprobs[t] ?? 0));
    const [lo, hi] = [1 - s.epsilonLow, 1 + s.epsilonHigh];
    const c1 = s.delta === null ? w : Math.min(w, s.delta);
    const dc1 = s.delta === null ? 1 : passes(w, Number.NEGATIVE_INFINITY, s.delta);
    const c2 = Math.min(Math.max(w, lo), hi);
    const dc2 = passes(w, lo, hi);
    const [u, v] = [c1 * A, c2 * A];
    const [gu, gv] = u < v ? [1, 0] : u > v ? [0, 1] : [0.5, 0.5];
    const rho = isWeights === null ? 1 : (isWeights[t] ?? 0);
    let perToken = -Math.min(u, v) * rho;
    // dw/dℓ = w (also when old = ℓ.detach(), where w ≡ 1).
    let d = -(gu * A * dc1 + gv * A * dc2) * w * rho;
    if ((w < lo && A < 0) || (w > hi && A > 0)) clipped += m;
    if (refLogprobs !== null) {
      const diff = (refLogprobs[t] ?? 0) - l;
      const klToken = Math.exp(diff) - diff - 1;
      kl += m * klToken;
      if (s.beta !== 0) {
        perToken += s.beta * klToken;
        d += s.beta * (1 - Math.exp(diff));
      }
    }
    loss += kappa * perToken;
    grad[t] = kappa * d;
  }
  return {
    loss,
    grad,
    clipFraction: masked > 0 ? clipped / masked : 0,
    klMean: masked > 0 ? kl / masked : 0,
  };
}
