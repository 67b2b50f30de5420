import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRng } from "../random/index.ts";
import {
  dpoLoss,
  fracRewardZeroStd,
  type GrpoInput,
  type GrpoSettings,
  groupAdvantages,
  grpoLoss,
  type ScoredTokens,
  sftLoss,
} from "./index.ts";

const close = (got: number, want: number, what: string, tol = 1e-6) =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);
const allClose = (got: ArrayLike<number>, want: number[], what: string) => {
  assert.equal(got.length, want.length, `${what}: length`);
  for (const [i, w] of want.entries()) close(got[i] ?? Number.NaN, w, `${what}[${i}]`);
};

/**
 * Two completions: sequence 0 has tokens 0–1, sequence 1 has tokens 2–4; A = [1, −0.5], ε = 0.2.
 * Ratios w = exp(ℓ − ℓ_old):
 *   t0: w = 1                  L = −1            dL/dℓ = −A·w = −1
 *   t1: w = e^0.3 = 1.3499     clipped high (A > 0): L = −1.2·1 = −1.2, gradient 0
 *   t2: w = e^−0.5 = 0.6065    clipped low (A < 0):  L = −(0.8·−0.5) = 0.4, gradient 0
 *   t3, t4: w = 1              L = 0.5 each, dL/dℓ = −A = 0.5 (the tie splits, halves add up)
 * Per-token sums: sequence 0: −2.2 over 2 tokens; sequence 1: 1.4 over 3 tokens.
 */
const tokens: ScoredTokens = {
  sequences: 2,
  seq: Int32Array.from([0, 0, 1, 1, 1]),
  mask: Float32Array.from([1, 1, 1, 1, 1]),
};
const logprobs = Float32Array.from([-1, -2, -0.5, -1.5, -3]);
const oldLogprobs = Float32Array.from([-1, -2.3, 0, -1.5, -3]);
const settings: GrpoSettings = {
  lossType: "grpo",
  epsilonLow: 0.2,
  epsilonHigh: 0.2,
  delta: null,
  beta: 0,
  maxCompletionLength: 4,
  gradientAccumulationSteps: 1,
  itemsInGenerationBatch: 10,
};
const base = (over: Partial<GrpoInput> = {}, s: Partial<GrpoSettings> = {}): GrpoInput => ({
  tokens,
  logprobs,
  oldLogprobs,
  refLogprobs: null,
  advantages: Float64Array.from([1, -0.5]),
  isWeights: null,
  ...over,
  settings: { ...settings, ...s },
});

describe("GRPO loss types against hand-computed cases", () => {
  it("grpo: mean over sequences of each sequence's token mean", () => {
    const r = grpoLoss(base());
    close(r.loss, -2.2 / 4 + 1.4 / 6, "loss"); // κ = 1/(2·2), 1/(2·3)
    allClose(r.grad, [-0.25, 0, 0, 0.5 / 6, 0.5 / 6], "grad");
    close(r.clipFraction, 2 / 5, "clip fraction");
  });
  it("bnpo: sum over the micro-batch's masked tokens", () => {
    const r = grpoLoss(base({}, { lossType: "bnpo" }));
    close(r.loss, (-2.2 + 1.4) / 5, "loss");
    allClose(r.grad, [-0.2, 0, 0, 0.1, 0.1], "grad");
  });
  it("dr_grpo: sequences × max completion length", () => {
    const r = grpoLoss(base({}, { lossType: "dr_grpo" }));
    close(r.loss, -0.8 / 8, "loss");
    allClose(r.grad, [-0.125, 0, 0, 0.0625, 0.0625], "grad");
  });
  it("dapo: tokens of the whole generation batch, no division by accumulation steps", () => {
    const r = grpoLoss(base({}, { lossType: "dapo", gradientAccumulationSteps: 4 }));
    close(r.loss, -0.8 / 10, "loss");
    allClose(r.grad, [-0.1, 0, 0, 0.05, 0.05], "grad");
  });
  it("gradient accumulation divides grpo, bnpo and dr_grpo", () => {
    const r = grpoLoss(base({}, { lossType: "bnpo", gradientAccumulationSteps: 2 }));
    close(r.loss, (-2.2 + 1.4) / 10, "loss");
    allClose(r.grad, [-0.1, 0, 0, 0.05, 0.05], "grad");
  });
  it("β·KL (k3) to the reference, outside the clipping", () => {
    // t0: ℓ_ref − ℓ = −0.5 → KL = e^−0.5 + 0.5 − 1 = 0.106531, dKL/dℓ = 1 − e^−0.5 = 0.393469
    const refLogprobs = Float32Array.from([-1.5, -2, -0.5, -1.5, -3]);
    const r = grpoLoss(base({ refLogprobs }, { lossType: "bnpo", beta: 0.1 }));
    close(r.loss, -0.16 + (0.1 * 0.1065306597) / 5, "loss");
    allClose(r.grad, [-0.2 + (0.1 * 0.3934693403) / 5, 0, 0, 0.1, 0.1], "grad");
    close(r.klMean, 0.1065306597 / 5, "kl mean");
  });
  it("δ caps the unclipped ratio for negative advantages", () => {
    // One token, A = −0.5, w = 2. Without δ: L = −min(2·A, 1.2·A) = 1, dL/dℓ = −A·w = 1.
    // With δ = 1.5: c1 = 1.5 (constant), L = −min(−0.75, −0.6) = 0.75, gradient 0.
    const one: ScoredTokens = { sequences: 1, seq: Int32Array.of(0), mask: Float32Array.of(1) };
    const input = (delta: number | null) =>
      grpoLoss({
        ...base({ tokens: one, advantages: Float64Array.of(-0.5) }, { lossType: "bnpo", delta }),
        logprobs: Float32Array.of(Math.log(2)),
        oldLogprobs: Float32Array.of(0),
      });
    close(input(null).loss, 1, "loss without δ");
    allClose(input(null).grad, [1], "grad without δ");
    close(input(1.5).loss, 0.75, "loss with δ");
    allClose(input(1.5).grad, [0], "grad with δ");
  });
  it("importance-sampling weights scale the policy term", () => {
    const isWeights = Float32Array.from([0.5, 1, 1, 1, 1]);
    const r = grpoLoss(base({ isWeights }, { lossType: "bnpo" }));
    close(r.loss, (-0.5 - 1.2 + 1.4) / 5, "loss");
    allClose(r.grad, [-0.1, 0, 0, 0.1, 0.1], "grad");
  });
  it("on-policy (no old log-probabilities): ratio 1, gradient −A·κ", () => {
    const r = grpoLoss(base({ oldLogprobs: null }, { lossType: "bnpo" }));
    close(r.loss, (-2 + 1.5) / 5, "loss");
    allClose(r.grad, [-0.2, -0.2, 0.1, 0.1, 0.1], "grad");
  });
  it("masked tokens (truncated completions) contribute nothing", () => {
    const masked = { ...tokens, mask: Float32Array.from([1, 1, 0, 0, 0]) };
    const r = grpoLoss(base({ tokens: masked }, { lossType: "grpo" }));
    close(r.loss, -2.2 / 4, "loss"); // sequence 1 has no tokens: max(Σm, 1) = 1, sum 0
    allClose(r.grad, [-0.25, 0, 0, 0, 0], "grad");
  });
  it("the gradient is the derivative of the loss (central differences, random inputs)", () => {
    const rng = createRng(3);
    for (const lossType of ["grpo", "bnpo", "dr_grpo", "dapo"] as const) {
      const n = 12;
      const t: ScoredTokens = {
        sequences: 3,
        seq: Int32Array.from({ length: n }, (_, i) => i % 3),
        mask: Float32Array.from({ length: n }, (_, i) => (i === 7 ? 0 : 1)),
      };
      const lp = Float32Array.from({ length: n }, () => -rng.next() * 3);
      const fixedOld = Float32Array.from(lp, (v, i) => v + Math.sin(i) * 0.3);
      const fixedRef = Float32Array.from(lp, (v, i) => v - 0.5 - Math.cos(i) * 0.3);
      const evaluate = (l: Float32Array) =>
        grpoLoss({
          tokens: t,
          logprobs: l,
          oldLogprobs: fixedOld,
          refLogprobs: fixedRef,
          advantages: Float64Array.from([1.3, -0.7, 0.4]),
          isWeights: null,
          settings: { ...settings, lossType, beta: 0.04, delta: 2 },
        });
      const { grad } = evaluate(lp);
      for (let i = 0; i < n; i++) {
        const h = 1e-3;
        const plus = Float32Array.from(lp);
        const minus = Float32Array.from(lp);
        plus[i] = (plus[i] ?? 0) + h;
        minus[i] = (minus[i] ?? 0) - h;
        const numeric = (evaluate(plus).loss - evaluate(minus).loss) / (2 * h);
        close(grad[i] ?? 0, numeric, `${lossType} token ${i}`, 2e-4);
      }
    }
  });
});

describe("group advantages", () => {
  it("normalizes within groups with Bessel's correction, + 1e-4", () => {
    // group [1, 0]: mean 0.5, std √0.5; group [1, 1]: std 0, advantage 0
    const a = groupAdvantages([1, 0, 1, 1], 2, "group");
    allClose(a, [0.5 / (Math.SQRT1_2 + 1e-4), -0.5 / (Math.SQRT1_2 + 1e-4), 0, 0], "group");
  });
  it("batch scaling divides by the whole batch's std; none does not divide", () => {
    // batch: mean 0.75, std √(0.75/3) = 0.5
    allClose(groupAdvantages([1, 0, 1, 1], 2, "batch"), [0.5 / 0.5001, -0.5 / 0.5001, 0, 0], "batch");
    allClose(groupAdvantages([1, 0, 3, 1], 2, "none"), [0.5, -0.5, 1, -1], "none");
  });
  it("skips NaN rewards and zeroes NaN advantages", () => {
    // group [2, NaN, 0]: mean 1, std √2; the NaN completion gets 0
    const a = groupAdvantages([2, Number.NaN, 0], 3, "group");
    allClose(a, [1 / (Math.SQRT2 + 1e-4), 0, -1 / (Math.SQRT2 + 1e-4)], "nan");
  });
  it("refuses rewards that do not form whole groups", () => {
    assert.throws(() => groupAdvantages([1, 2, 3], 2, "group"), RangeError);
  });
});

describe("frac_reward_zero_std", () => {
  it("is 1 when every group's rewards are equal, 0 when every group's differ", () => {
    assert.equal(fracRewardZeroStd([1, 1, 0, 0, 0.3, 0.3], 2), 1);
    // Equal rewards whose float mean is not exactly the value (0.1 · 3 / 3) still have zero std.
    assert.equal(fracRewardZeroStd([0.1, 0.1, 0.1], 3), 1);
    assert.equal(fracRewardZeroStd([1, 0, 2, 3, -1, 5], 2), 0);
    assert.equal(fracRewardZeroStd([0, 0, 1e-3], 3), 0, "a spread far above torch.isclose's 1e-8 is no zero");
  });
  it("is the share of groups, whatever their size, for a mix", () => {
    assert.equal(fracRewardZeroStd([1, 1, 1, 0, 1, 0, 2, 2, 2, 3, 3, 4], 3), 0.5);
    assert.equal(fracRewardZeroStd([5, 5, 5, 5, 1, 2, 3, 4], 4), 0.5);
    assert.equal(fracRewardZeroStd([0, 1, 1, 1, 2, 2, 2, 2], 2), 0.75);
  });
  it("leaves skipped (NaN) rewards out; a group with under two rewards left has no spread", () => {
    // [1, NaN, 1]: equal; [1, NaN, 0]: differ; [NaN, 1, NaN] and [NaN, NaN, NaN]: no spread left.
    const nan = Number.NaN;
    assert.equal(fracRewardZeroStd([1, nan, 1, 1, nan, 0, nan, 1, nan, nan, nan, nan], 3), 0.75);
  });
  it("is 0 for no rewards and refuses rewards that do not form whole groups", () => {
    assert.equal(fracRewardZeroStd([], 4), 0);
    assert.throws(() => fracRewardZeroStd([1, 2, 3], 2), RangeError);
  });
});

describe("online DPO", () => {
  // chosen = sequence 0 (ℓ −1, −2; ref −1.5, −2), rejected = sequence 1 (ℓ −1; ref −0.5):
  // h = (−3 − −1) − (−3.5 − −0.5) = 1
  const dpoTokens: ScoredTokens = {
    sequences: 2,
    seq: Int32Array.from([0, 0, 1]),
    mask: Float32Array.from([1, 1, 1]),
  };
  const input = {
    tokens: dpoTokens,
    logprobs: Float32Array.from([-1, -2, -1]),
    refLogprobs: Float32Array.from([-1.5, -2, -0.5]),
    pairs: [{ chosen: 0, rejected: 1 }],
    beta: 0.1,
  };
  it("sigmoid: −log σ(βh), dℓ_chosen = −β σ(−βh)", () => {
    const r = dpoLoss({ ...input, lossType: "sigmoid" });
    close(r.loss, Math.log1p(Math.exp(-0.1)), "loss");
    const g = 0.1 / (1 + Math.exp(0.1));
    allClose(r.grad, [-g, -g, g], "grad");
    assert.equal(r.accuracy, 1);
    close(r.margin, 0.1, "margin");
  });
  it("ipo: (h − 1/(2β))², dℓ_chosen = 2(h − 1/(2β))", () => {
    const r = dpoLoss({ ...input, lossType: "ipo" });
    close(r.loss, 16, "loss");
    allClose(r.grad, [-8, -8, 8], "grad");
  });
});

describe("SFT", () => {
  it("mean negative log-likelihood over masked tokens", () => {
    const t: ScoredTokens = {
      sequences: 1,
      seq: Int32Array.from([0, 0, 0]),
      mask: Float32Array.from([1, 1, 0]),
    };
    const r = sftLoss(t, Float32Array.from([-1, -2, -3]));
    close(r.loss, 1.5, "loss");
    allClose(r.grad, [-0.5, -0.5, 0], "grad");
  });
});
