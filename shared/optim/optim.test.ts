import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { referenceAdamWStep, referenceClipGradNorm } from "@loracast/dev-support/optim-reference";
import { createRng } from "../random/index.ts";
import { AdamW, type AdamWState, learningRate, TORCH_ADAMW_DEFAULTS } from "./index.ts";

const close = (got: number, want: number, what: string, tol = 1e-6) =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);

describe("AdamW (torch semantics)", () => {
  it("matches torch.optim.AdamW over two steps, weight decay decoupled", () => {
    // p = 1, lr 0.1, defaults (β 0.9/0.999, ε 1e-8, wd 0.01). Step 1, g = 0.5:
    //   p·(1 − 0.001) = 0.999; m = 0.05; v = 0.00025; step 0.1/0.1 = 1; denom √v/√0.001 = 0.5
    //   p = 0.999 − 0.05/0.5 = 0.899
    // Step 2, g = −0.25: m = 0.02, v = 0.00031225, bias corrections 0.19 and 0.001999 → p = 0.8714673
    const p = Float32Array.of(1);
    const opt = new AdamW(TORCH_ADAMW_DEFAULTS);
    opt.step(new Map([["w", p]]), new Map([["w", Float32Array.of(0.5)]]), 0.1);
    close(p[0] ?? 0, 0.899, "after step 1");
    opt.step(new Map([["w", p]]), new Map([["w", Float32Array.of(-0.25)]]), 0.1);
    close(p[0] ?? 0, 0.8714672987, "after step 2");
    assert.equal(opt.state.step, 2);
  });

  it("resumes from saved state to the same result", () => {
    const run = (split: boolean) => {
      const p = Float32Array.of(0.3, -0.2);
      let opt = new AdamW(TORCH_ADAMW_DEFAULTS);
      for (let t = 0; t < 4; t++) {
        if (split && t === 2) opt = new AdamW(TORCH_ADAMW_DEFAULTS, structuredClone(opt.state));
        opt.step(new Map([["w", p]]), new Map([["w", Float32Array.of(0.1 * t - 0.1, 0.05 * t)]]), 0.01);
      }
      return [...p];
    };
    assert.deepEqual(run(true), run(false));
  });

  it("refuses a gradient of the wrong length, before changing anything", () => {
    const p = Float32Array.of(1, 2);
    const opt = new AdamW(TORCH_ADAMW_DEFAULTS);
    assert.throws(() => opt.step(new Map([["w", p]]), new Map([["w", Float32Array.of(1)]]), 0.1), RangeError);
    assert.deepEqual([...p], [1, 2]);
    assert.equal(opt.state.step, 0);
  });
});

describe("global-norm clipping fused into the step (clippedStep)", () => {
  const one = (a: number, b: number) =>
    new Map([
      ["a", Float32Array.of(a)],
      ["b", Float32Array.of(b)],
    ]);
  it("steps on the gradients scaled by max/(‖g‖ + 1e-6) and returns the norm before clipping", () => {
    const clipped = one(1, -1);
    const opt = new AdamW(TORCH_ADAMW_DEFAULTS);
    close(opt.clippedStep(clipped, one(3, 4), 0.1, 1), 5, "norm");
    const apart = one(1, -1);
    new AdamW(TORCH_ADAMW_DEFAULTS).step(apart, one(3 / (5 + 1e-6), 4 / (5 + 1e-6)), 0.1);
    assert.deepEqual(clipped, apart);
    assert.equal(opt.state.step, 1);
  });
  it("leaves gradients under the bound alone, and the gradients themselves as they are", () => {
    const grads = new Map([["a", Float32Array.of(0.3, 0.4)]]);
    const clipped = new Map([["a", Float32Array.of(1, 1)]]);
    close(new AdamW(TORCH_ADAMW_DEFAULTS).clippedStep(clipped, grads, 0.1, 1), 0.5, "norm");
    const plain = new Map([["a", Float32Array.of(1, 1)]]);
    new AdamW(TORCH_ADAMW_DEFAULTS).step(plain, grads, 0.1);
    assert.deepEqual(clipped, plain);
    assert.deepEqual([...(grads.get("a") ?? [])], [Math.fround(0.3), Math.fround(0.4)]);
  });
  it("reports a non-finite norm and takes no step", () => {
    const p = new Map([["a", Float32Array.of(1, 2)]]);
    const opt = new AdamW(TORCH_ADAMW_DEFAULTS);
    assert.ok(Number.isNaN(opt.clippedStep(p, new Map([["a", Float32Array.of(Number.NaN, 1)]]), 0.1, 1)));
    assert.deepEqual([...(p.get("a") ?? [])], [1, 2]);
    assert.equal(opt.state.step, 0);
    assert.equal(opt.state.moments.size, 0);
  });
});

describe("the fused step against the session-15 loop (test/support/optim-reference)", () => {
  it("is bit-identical over several steps, clipped and not, with weight decay", () => {
    const rng = createRng(16);
    const lengths = [1, 7, 1000, 4099];
    const tensors = () => new Map(lengths.map((n, k) => [`t${k}`, new Float32Array(n)]));
    const fill = (m: Map<string, Float32Array>, scale: number) => {
      for (const t of m.values()) for (let i = 0; i < t.length; i++) t[i] = (rng.next() * 2 - 1) * scale;
    };
    const ours = tensors();
    fill(ours, 0.05);
    const theirs = new Map([...ours].map(([k, v]) => [k, v.slice()]));
    const settings = { ...TORCH_ADAMW_DEFAULTS, weightDecay: 0.1 };
    const opt = new AdamW(settings);
    const ref: AdamWState = { step: 0, moments: new Map() };
    // Gradient scales whose global norms fall on both sides of maxNorm 1 (‖g‖ ≈ √(5107/3) · scale).
    const scales = [1, 0.001, 0.05, 3, 1e-6, 0.02];
    const norms: number[] = [];
    for (const [t, scale] of scales.entries()) {
      const grads = tensors();
      fill(grads, scale);
      const copy = new Map([...grads].map(([k, v]) => [k, v.slice()]));
      const lr = 1e-3 * (t + 1);
      const norm = opt.clippedStep(ours, grads, lr, 1);
      assert.equal(norm, referenceClipGradNorm(copy, 1), `norm at step ${t + 1}`);
      norms.push(norm);
      referenceAdamWStep(settings, ref, theirs, copy, lr);
    }
    // Both sides of the clip were exercised, or the test proves less than it says.
    assert.ok(norms.some((n) => n > 1) && norms.some((n) => n < 1), `norms ${norms}`);
    assert.equal(opt.state.step, ref.step);
    for (const [k, p] of ours) {
      assert.deepEqual(bytes(p), bytes(theirs.get(k)), `${k} parameters`);
      const mv = opt.state.moments.get(k);
      const rv = ref.moments.get(k);
      assert.deepEqual(bytes(mv?.m), bytes(rv?.m), `${k} first moment`);
      assert.deepEqual(bytes(mv?.v), bytes(rv?.v), `${k} second moment`);
    }
  });
});

/** A tensor's bytes, so that NaN payloads and signed zeros compare exactly too. */
const bytes = (t: Float32Array | undefined) =>
  t === undefined ? undefined : Buffer.from(t.buffer, t.byteOffset, t.byteLength);

describe("learning-rate schedules (transformers)", () => {
  const s = { lr: 1, warmupSteps: 2, totalSteps: 10 };
  it("warmup rises linearly from 0", () => {
    assert.deepEqual(
      [0, 1].map((t) => learningRate({ ...s, kind: "linear" }, t)),
      [0, 0.5],
    );
  });
  it("linear decays to 0 at the last step", () => {
    close(learningRate({ ...s, kind: "linear" }, 2), 1, "peak");
    close(learningRate({ ...s, kind: "linear" }, 6), 0.5, "half way");
    close(learningRate({ ...s, kind: "linear" }, 10), 0, "end");
  });
  it("cosine follows half a cosine", () => {
    close(learningRate({ ...s, kind: "cosine" }, 4), 0.8535533906, "quarter way"); // ½(1 + cos(π/4))
    close(learningRate({ ...s, kind: "cosine" }, 10), 0, "end");
  });
  it("constant ignores warmup; constant_with_warmup does not", () => {
    assert.equal(learningRate({ ...s, kind: "constant" }, 0), 1);
    assert.equal(learningRate({ ...s, kind: "constant_with_warmup" }, 1), 0.5);
    assert.equal(learningRate({ ...s, kind: "constant_with_warmup" }, 7), 1);
  });
});
