/**
 * AdamW as torch.optim.AdamW computes it (`torch/optim/adamw.py`, `_single_tensor_adamw`; Loshchilov
 * & Hutter 2019, "Decoupled Weight Decay Regularization", arXiv:1711.05101), over named Float32Array
 * parameters updated in place: decoupled weight decay first, then the bias-corrected step
 * p −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
 */
export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 (transformers'
 * `TrainingArguments` uses weight_decay 0.0; run configs say which they want).
 */
export const TORCH_ADAMW_DEFAULTS: AdamWSettings = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** The optimizer's state, as it is checkpointed. */
export interface AdamWState {
  step: number;
  /** Per parameter: first and second moments. */
  moments: Map<string, { m: Float32Array; v: Float32Array }>;
}

/**
 * AdamW over named parameters (LoRA factors, float32, updated in place). Pass `state` to resume from
 * a checkpoint; `state.step` counts the steps taken, as torch's per-parameter `step` does.
 */
export class AdamW {
  readonly state: AdamWState;

  constructor(
    private readonly settings: AdamWSettings,
    state?: AdamWState,
  ) {
    this.state = state ?? { step: 0, moments: new Map() };
  }

  /**
   * One step at learning rate `lr`; every parameter needs a gradient of its length (else a
   * RangeError, before anything changes). Each gradient element is multiplied by `gradScale`
   * (default 1) and rounded to float32 first, as an in-place clip would have stored it; `grads`
   * themselves are left as they are.
   */
  step(
    params: ReadonlyMap<string, Float32Array>,
    grads: ReadonlyMap<string, Float32Array>,
    lr: number,
    gradScale = 1,
  ): void {
    const { beta1, beta2, eps, weightDecay } = this.settings;
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (g === undefined || g.length !== p.length) {
        throw new RangeError(`gradient for ${name}: ${g?.length ?? "none"}, parameter has ${p.length}`);
      }
    }
    this.state.step++;
    const t = this.state.step;
    const bc1 = 1 - beta1 ** t;
    const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
    const stepSize = lr / bc1;
    const decay = 1 - lr * weightDecay;
    for (const [name, p] of params) {
      let mv = this.state.moments.get(name);
      if (mv === undefined) {
        mv = { m: new Float32Array(p.length), v: new Float32Array(p.length) };
        this.state.moments.set(name, mv);
      }
      adamwKernel(p, grads.get(name) as Float32Array, mv.m, mv.v, {
        beta1,
        beta2,
        eps,
        stepSize,
        decay,
        bc2Sqrt,
        gradScale,
      });
    }
  }

  /**
   * torch.nn.utils.clip_grad_norm_(max_norm) then `step`, in one pass over the gradients less than
   * the two done apart: the clip's scale max/(‖g‖ + 1e-6), when below 1, is applied inside the step.
   * Returns the global L2 norm of `grads` before clipping; when it is NaN or Infinity nothing is
   * changed (no step, `state.step` as it was), and the caller decides what a skipped step means.
   */
  clippedStep(
    params: ReadonlyMap<string, Float32Array>,
    grads: ReadonlyMap<string, Float32Array>,
    lr: number,
    maxNorm: number,
  ): number {
    const norm = gradNorm(grads);
    if (!Number.isFinite(norm)) return norm;
    const coef = maxNorm / (norm + 1e-6);
    this.step(params, grads, lr, Math.min(coef, 1));
    return norm;
  }
}

/** The per-step constants of `adamwKernel`, computed once per step by `AdamW.step`. */
interface KernelConstants {
  beta1: number;
  beta2: number;
  eps: number;
  /** lr / (1 − β1ᵗ) */
  stepSize: number;
  /** 1 − lr · weight_decay */
  decay: number;
  /** √(1 − β2ᵗ) */
  bc2Sqrt: number;
  gradScale: number;
}

/**
 * AdamW over one tensor, in place. The arithmetic is the session-15 loop's operation for operation
 * (test/support/optim-reference; the stored float32 values bit-identical, `optim.test.ts`): m and v stay unrounded doubles
 * until stored, and the update divides rather than multiplying by precomputed reciprocals, which
 * would change the last bit. What makes it faster (docs/benchmarks.md, "Training: the optimizer
 * step"): no `?? 0` on typed-array reads (every index is in bounds), constants in locals, the
 * length read once, and the clip's scale folded in instead of a pass of its own.
 */
function adamwKernel(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  k: KernelConstants,
): void {
  const { beta1, beta2, eps, stepSize, decay, bc2Sqrt, gradScale } = k;
  const oneMinusBeta1 = 1 - beta1;
  const oneMinusBeta2 = 1 - beta2;
  const n = p.length;
  for (let i = 0; i < n; i++) {
    // × 1 is exact and fround of a float32 value is itself: no clip, the stored gradient as it is.
    const gi = Math.fround((g[i] as number) * gradScale);
    const mi = beta1 * (m[i] as number) + oneMinusBeta1 * gi;
    const vi = beta2 * (v[i] as number) + oneMinusBeta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = (p[i] as number) * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

/** The global L2 norm of `grads` (NaN or Infinity when a gradient has one), accumulated in float64. */
function gradNorm(grads: ReadonlyMap<string, Float32Array>): number {
  let sq = 0;
  // Indexed loops: iterating a typed array with for-of was 3× slower (8.8 M elements: ~70 ms).
  for (const g of grads.values()) {
    const n = g.length;
    for (let i = 0; i < n; i++) {
      const x = g[i] as number;
      sq += x * x;
    }
  }
  return Math.sqrt(sq);
}
