/**
 * The optimizer step as `shared/optim/adamw.ts` computed it before session 16 (issue 18), kept
 * verbatim as the reference the faster step must match bit for bit (`shared/optim/optim.test.ts`)
 * and race against (`npm run bench:optim`). Never used by production code.
 */
import type { AdamWSettings, AdamWState } from "@loracast/shared/optim";

/**
 * torch.nn.utils.clip_grad_norm_ as the run loop ran it (`clipGradNorm`, session 15): scales every
 * gradient in place by max/(‖g‖ + 1e-6) when that is below 1; returns the norm before clipping.
 */
export function referenceClipGradNorm(grads: ReadonlyMap<string, Float32Array>, maxNorm: number): number {
  let sq = 0;
  for (const g of grads.values()) {
    const n = g.length;
    for (let i = 0; i < n; i++) {
      const x = g[i] as number;
      sq += x * x;
    }
  }
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (Number.isFinite(norm) && coef < 1) {
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = (g[i] ?? 0) * coef;
  }
  return norm;
}

/** One AdamW step as `AdamW.step` took it (session 15): parameters and `state` updated in place. */
export function referenceAdamWStep(
  settings: AdamWSettings,
  state: AdamWState,
  params: ReadonlyMap<string, Float32Array>,
  grads: ReadonlyMap<string, Float32Array>,
  lr: number,
): void {
  const { beta1, beta2, eps, weightDecay } = settings;
  state.step++;
  const t = state.step;
  const bc1 = 1 - beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
  const stepSize = lr / bc1;
  const decay = 1 - lr * weightDecay;
  for (const [name, p] of params) {
    const g = grads.get(name) as Float32Array;
    let mv = state.moments.get(name);
    if (mv === undefined) {
      mv = { m: new Float32Array(p.length), v: new Float32Array(p.length) };
      state.moments.set(name, mv);
    }
    const { m, v } = mv;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] ?? 0;
      const mi = beta1 * (m[i] ?? 0) + (1 - beta1) * gi;
      const vi = beta2 * (v[i] ?? 0) + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = (p[i] ?? 0) * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
    }
  }
}
