/**
 * The addon's fused LoRA op, `ai.loracast.LoraShrinkExpand` (`lora-op.h`, `lora-op.cc`, `lora-cuda.cc`; its ONNX
 * domain, type and version are model-format's `LORA_SHRINK_EXPAND`): small test graphs of it and of
 * the two Gemms it replaces, and a float64 reference. Only sessions the addon creates know the op
 * (every one of them, on `cpu` and `cuda`); onnxruntime-node's do not.
 */
import { LORA_SHRINK_EXPAND } from "../model-format/index.ts";
import { attr, encodeModel, GraphBuilder } from "../onnx/index.ts";
import type { Rng } from "../random/index.ts";
import type { HostTensor } from "./index.ts";

/**
 * A graph of `nodes` LoRA branches in a chain, with every dim dynamic: inputs `x [m, k]`, `y [m, n]`
 * and per node `A{i} [r, k]`, `B{i} [n, r]`; node i computes `z{i} = z{i-1} + (x · A{i}ᵀ) · B{i}ᵀ`
 * (`z{-1}` = `y`), the last one the output `z [m, n]`. `form` `fused`: one `LoraShrinkExpand` per
 * node; `gemms`: the decoder's two Gemms (`u = Gemm(x, A, transB=1)`, `Gemm(u, B, C, transB=1)`,
 * shared/model-builder/decoder-graph.ts). `kernel`, fused only: the nodes' `kernel` attribute (which
 * CUDA kernels run: `auto`, `split` or `fused`, lora-op.h; any other string makes the addon refuse
 * the model at session creation); absent: no attribute (auto). Returns the encoded ONNX model
 * (opset 21).
 */
export function loraChainModel(form: "fused" | "gemms", nodes = 1, kernel?: string): Uint8Array {
  if (!(Number.isInteger(nodes) && nodes >= 1))
    throw new RangeError(`nodes must be a positive integer, got ${nodes}`);
  const g = new GraphBuilder(`lora-${form}`);
  g.input("x", "float32", ["m", "k"]);
  g.input("y", "float32", ["m", "n"]);
  let z = "y";
  for (let i = 0; i < nodes; i++) {
    const a = g.input(`A${i}`, "float32", ["r", "k"]);
    const b = g.input(`B${i}`, "float32", ["n", "r"]);
    const names = i === nodes - 1 ? ["z"] : [`z${i}`];
    if (form === "fused") {
      g.op(
        LORA_SHRINK_EXPAND.opType,
        ["x", a, b, z],
        kernel === undefined ? {} : { kernel: attr.string(kernel) },
        {
          domain: LORA_SHRINK_EXPAND.domain,
          names,
        },
      );
    } else {
      const u = g.op1("Gemm", ["x", a], { transB: attr.int(1) });
      g.op("Gemm", [u, b, z], { transB: attr.int(1) }, { names });
    }
    z = names[0] as string;
  }
  g.output("z", "float32", ["m", "n"]);
  const opsets: Record<string, number> = { "": 21 };
  if (form === "fused") opsets[LORA_SHRINK_EXPAND.domain] = LORA_SHRINK_EXPAND.version;
  return encodeModel({ graph: g.build(), opsets, producer: "loracast-lora-op" });
}

/** One LoRA branch's operands, row-major: x [m, k], a [r, k], b [n, r], y [m, n]. */
export interface LoraOperands {
  m: number;
  k: number;
  r: number;
  n: number;
  x: Float32Array;
  a: Float32Array;
  b: Float32Array;
  y: Float32Array;
}

/**
 * Shapes `[M, K, R, N]` that exercise the op's kernels: M = 0, 1, 8 (decode), 64, 300 and 4100
 * (prefill: hundreds of row tiles);
 * R = 0 (z = y), 16, 32, 48 and 80 (above the CUDA expand's 64-rank chunk, `RANKS` in
 * lora-kernels.cu); K = 896 and 4864 (Qwen2.5-0.5B's hidden and intermediate sizes) and odd sizes
 * (no float4 loads); N up to 9728 (its packed gate_up) and odd.
 */
export const LORA_SHAPES: readonly (readonly [m: number, k: number, r: number, n: number])[] = [
  [0, 896, 16, 1152],
  [1, 896, 0, 1152],
  [1, 896, 16, 896],
  [1, 896, 48, 1152],
  [8, 896, 48, 1152],
  [1, 896, 32, 9728],
  [8, 4864, 16, 896],
  [8, 37, 80, 33],
  [1, 1219, 16, 5],
  [64, 896, 80, 1152],
  [300, 896, 16, 257],
  [300, 37, 80, 129],
  [4100, 64, 72, 1030],
  [3, 1, 1, 1],
];

/** Operands of the given shape, uniform in [-1, 1) from `rng`. */
export function randomLoraOperands(rng: Rng, m: number, k: number, r: number, n: number): LoraOperands {
  const floats = (count: number) => Float32Array.from({ length: count }, () => rng.next() * 2 - 1);
  return { m, k, r, n, x: floats(m * k), a: floats(r * k), b: floats(n * r), y: floats(m * n) };
}

/** Host feeds of `loraChainModel(form, 1)` for `o`. */
export function loraFeeds(o: LoraOperands): Record<"x" | "A0" | "B0" | "y", HostTensor> {
  return {
    x: { type: "float32", dims: [o.m, o.k], data: o.x },
    A0: { type: "float32", dims: [o.r, o.k], data: o.a },
    B0: { type: "float32", dims: [o.n, o.r], data: o.b },
    y: { type: "float32", dims: [o.m, o.n], data: o.y },
  };
}

/**
 * `y + (x · aᵀ) · bᵀ` in float64 (`z`), and per element the sum of the magnitudes of its terms
 * (`scale`: |y| + Σ_r |h_r|·|b[n, r]| with |h_r| = Σ_k |x|·|a|), which bounds float32 rounding:
 * an implementation that accumulates in float32 differs from `z` by a few 1e-7 × `scale`.
 */
export function loraReference(o: LoraOperands): { z: Float64Array; scale: Float64Array } {
  const { m, k, r, n, x, a, b, y } = o;
  const z = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  const h = new Float64Array(r);
  const habs = new Float64Array(r);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      let sa = 0;
      for (let q = 0; q < k; q++) {
        const t = (x[i * k + q] as number) * (a[j * k + q] as number);
        s += t;
        sa += Math.abs(t);
      }
      h[j] = s;
      habs[j] = sa;
    }
    for (let c = 0; c < n; c++) {
      const base = y[i * n + c] as number;
      let s = base;
      let sa = Math.abs(base);
      for (let j = 0; j < r; j++) {
        const bv = b[c * r + j] as number;
        s += (h[j] as number) * bv;
        sa += (habs[j] as number) * Math.abs(bv);
      }
      z[i * n + c] = s;
      scale[i * n + c] = sa;
    }
  }
  return { z, scale };
}

/**
 * The largest |got − z| / scale over all elements (0 for none): float32 rounding keeps it near
 * 1e-7; a wrong index or a missed term makes it order 1.
 */
export function loraRelativeError(
  got: Float32Array,
  reference: { z: Float64Array; scale: Float64Array },
): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const s = Math.max(reference.scale[i] as number, Number.MIN_VALUE);
    worst = Math.max(worst, Math.abs((got[i] as number) - (reference.z[i] as number)) / s);
  }
  return got.length === reference.z.length ? worst : Number.POSITIVE_INFINITY;
}
