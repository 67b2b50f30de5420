import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdamW, clipGradNorm, learningRate, TORCH_ADAMW_DEFAULTS } from "./index.ts";

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

describe("global-norm clipping", () => {
  it("scales by max/(‖g‖ + 1e-6) and returns the norm before clipping", () => {
    const grads = new Map([
      ["a", Float32Array.of(3)],
      ["b", Float32Array.of(4)],
    ]);
    close(clipGradNorm(grads, 1), 5, "norm");
    close(grads.get("a")?.[0] ?? 0, 3 / (5 + 1e-6), "a");
    close(grads.get("b")?.[0] ?? 0, 4 / (5 + 1e-6), "b");
  });
  it("leaves gradients under the bound alone", () => {
    const grads = new Map([["a", Float32Array.of(0.3, 0.4)]]);
    close(clipGradNorm(grads, 1), 0.5, "norm");
    assert.deepEqual([...(grads.get("a") ?? [])], [Math.fround(0.3), Math.fround(0.4)]);
  });
  it("reports a non-finite norm without touching the gradients", () => {
    const grads = new Map([["a", Float32Array.of(Number.NaN, 1)]]);
    assert.ok(Number.isNaN(clipGradNorm(grads, 1)));
    assert.equal(grads.get("a")?.[1], 1);
  });
});

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
