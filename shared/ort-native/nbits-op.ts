/**
 * The addon's `ai.loracast.MatMulNBitsLora` (`nbits-op.h`, `nbits-op.cc`, `lora-nbits.cuh`; its ONNX
 * domain, type and version are model-format's `MATMUL_NBITS_LORA`): test graphs of it, of the two
 * nodes it replaces (`com.microsoft.MatMulNBits` then `LoraShrinkExpand`) and of the base projection
 * alone, random operands in MatMulNBits' 4-bit layout, and a float64 reference.
 */
import { LORA_SHRINK_EXPAND, MATMUL_NBITS_LORA } from "../model-format/index.ts";
import { type AttrValue, attr, encodeModel, GraphBuilder } from "../onnx/index.ts";
import type { Rng } from "../random/index.ts";
import type { HostTensor } from "./index.ts";
import { loraReference } from "./lora-op.ts";

/**
 * A 4-bit weight `[n, k]` in MatMulNBits' layout (shared/model-builder/quantize.ts): `q` uint8
 * `[n, kBlocks, blockSize / 2]` (element t of a block in byte t / 2, low nibble first), `scales`
 * float32 `[n · kBlocks]`, `zeroPoints` uint8 `[n · ⌈kBlocks / 2⌉]` packed the same way.
 */
export interface NbitsWeight {
  n: number;
  k: number;
  blockSize: number;
  q: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
}

/** One projection's operands: `x [m, k]`, its weight, and LoRA factors `a [r, k]`, `b [n, r]`. */
export interface NbitsOperands {
  m: number;
  r: number;
  x: Float32Array;
  weight: NbitsWeight;
  a: Float32Array;
  b: Float32Array;
}

/** k's blocks per row of a weight. */
const kBlocksOf = (w: { k: number; blockSize: number }) => Math.ceil(w.k / w.blockSize);

/**
 * A random 4-bit `[n, k]` weight from `rng`: codes and zero points uniform in 0 … 15, scales in
 * [0.02, 0.1) (so that a dot product over k = 896 stays O(1) against inputs in [-1, 1)).
 * `blockSize` is a power of two from 16 to 256 (the op's; not checked here).
 */
export function randomNbitsWeight(rng: Rng, n: number, k: number, blockSize: number): NbitsWeight {
  const kBlocks = kBlocksOf({ k, blockSize });
  const bytes = (count: number) => Uint8Array.from({ length: count }, () => Math.floor(rng.next() * 256));
  return {
    n,
    k,
    blockSize,
    q: bytes((n * kBlocks * blockSize) / 2),
    scales: Float32Array.from({ length: n * kBlocks }, () => 0.02 + 0.08 * rng.next()),
    zeroPoints: bytes(n * Math.ceil(kBlocks / 2)),
  };
}

/** Operands of `m` rows and rank `r` over `weight`, x and the factors uniform in [-1, 1) from `rng`. */
export function randomNbitsOperands(rng: Rng, m: number, r: number, weight: NbitsWeight): NbitsOperands {
  const floats = (count: number) => Float32Array.from({ length: count }, () => rng.next() * 2 - 1);
  return { m, r, weight, x: floats(m * weight.k), a: floats(r * weight.k), b: floats(weight.n * r) };
}

/** The weight's `[n, k]` float32 values, `(q − zero point) · scale` rounded to float32 as the op does. */
function dequantizeNbits(w: NbitsWeight): Float32Array {
  const kBlocks = kBlocksOf(w);
  const zpCols = Math.ceil(kBlocks / 2);
  const out = new Float32Array(w.n * w.k);
  for (let c = 0; c < w.n; c++)
    for (let kk = 0; kk < w.k; kk++) {
      const blk = Math.floor(kk / w.blockSize);
      const t = kk % w.blockSize;
      const byte = w.q[(c * kBlocks + blk) * (w.blockSize / 2) + (t >> 1)] ?? 0;
      const code = t & 1 ? byte >> 4 : byte & 15;
      const zpByte = w.zeroPoints[c * zpCols + (blk >> 1)] ?? 0;
      const zero = blk & 1 ? zpByte >> 4 : zpByte & 15;
      out[c * w.k + kk] = Math.fround((code - zero) * (w.scales[c * kBlocks + blk] ?? 0));
    }
  return out;
}

/**
 * `x · Wᵀ + (x · aᵀ) · bᵀ` in float64 (`z`, `[m, n]`), and per element the sum of its terms'
 * magnitudes (`scale`), which bounds float32 rounding: an implementation that accumulates in float32
 * differs from `z` by a few 1e-7 × `scale`. Compare with `loraRelativeError`.
 */
export function nbitsReference(o: NbitsOperands): { z: Float64Array; scale: Float64Array } {
  const { m, x } = o;
  const { n, k } = o.weight;
  const w = dequantizeNbits(o.weight);
  // The branch's terms as loraReference sums them, over a zero base; the projection's added here.
  const { z, scale } = loraReference({ m, k, r: o.r, n, x, a: o.a, b: o.b, y: new Float32Array(m * n) });
  for (let i = 0; i < m; i++)
    for (let c = 0; c < n; c++) {
      let s = 0;
      let sa = 0;
      for (let q = 0; q < k; q++) {
        const t = (x[i * k + q] as number) * (w[c * k + q] as number);
        s += t;
        sa += Math.abs(t);
      }
      z[i * n + c] = (z[i * n + c] as number) + s;
      scale[i * n + c] = (scale[i * n + c] as number) + sa;
    }
  return { z, scale };
}

/**
 * How a projection is computed in `nbitsChainModel`: `fused`, one `MatMulNBitsLora`; `separate`,
 * `MatMulNBits` then `LoraShrinkExpand` (a 4-bit shrink-expand decoder before the fused op);
 * `base`, `MatMulNBits` alone (no LoRA inputs).
 */
export type NbitsForm = "fused" | "separate" | "base";

/**
 * A graph of one projection per weight in `weights` (all `[n, k]` of one block size, as
 * initializers), each of the same input `x [m, k]` with its own LoRA factors `A{i} [r, k]`,
 * `B{i} [n, r]` (not in `base`), summed by one `Sum` into the output `z [m, n]` (one weight: z is its
 * projection). `kernel`, `fused` and `separate` only: the fused nodes' `kernel` attribute (`auto`,
 * `split` or `fused`; absent: none). Returns the encoded ONNX model (opset 21, com.microsoft 1,
 * ai.loracast 1). Throws a RangeError when `weights` is empty or their shapes differ.
 */
export function nbitsChainModel(
  form: NbitsForm,
  weights: readonly NbitsWeight[],
  kernel?: string,
): Uint8Array {
  const first = weights[0];
  if (first === undefined) throw new RangeError("nbitsChainModel needs at least one weight");
  const { n, k, blockSize } = first;
  if (weights.some((w) => w.n !== n || w.k !== k || w.blockSize !== blockSize))
    throw new RangeError("nbitsChainModel: every weight must have the first one's n, k and block size");
  const kBlocks = kBlocksOf(first);
  const g = new GraphBuilder(`nbits-${form}`);
  const x = g.input("x", "float32", ["m", k]);
  const shape = { K: attr.int(k), N: attr.int(n), bits: attr.int(4), block_size: attr.int(blockSize) };
  const chosen: Record<string, AttrValue> = kernel === undefined ? {} : { kernel: attr.string(kernel) };
  const outputs = weights.map((w, i) => {
    const q = g.initializer(`q${i}`, "uint8", [n, kBlocks, blockSize / 2], w.q);
    const scales = g.initializer(`scales${i}`, "float32", [n * kBlocks], w.scales);
    const zp = g.initializer(`zp${i}`, "uint8", [n * Math.ceil(kBlocks / 2)], w.zeroPoints);
    if (form === "fused") {
      const a = g.input(`A${i}`, "float32", ["r", k]);
      const b = g.input(`B${i}`, "float32", [n, "r"]);
      return g.op1(
        MATMUL_NBITS_LORA.opType,
        [x, q, scales, zp, a, b],
        { ...shape, ...chosen },
        {
          domain: MATMUL_NBITS_LORA.domain,
        },
      );
    }
    const y = g.op1("MatMulNBits", [x, q, scales, zp], shape, { domain: "com.microsoft" });
    if (form === "base") return y;
    const a = g.input(`A${i}`, "float32", ["r", k]);
    const b = g.input(`B${i}`, "float32", [n, "r"]);
    return g.op1(LORA_SHRINK_EXPAND.opType, [x, a, b, y], chosen, { domain: LORA_SHRINK_EXPAND.domain });
  });
  g.op("Sum", outputs, {}, { names: ["z"] });
  g.output("z", "float32", ["m", n]);
  const opsets: Record<string, number> = { "": 21, "com.microsoft": 1 };
  if (form !== "base") opsets[MATMUL_NBITS_LORA.domain] = MATMUL_NBITS_LORA.version;
  return encodeModel({ graph: g.build(), opsets, producer: "loracast-nbits-op" });
}

/** Host feeds of `nbitsChainModel(form, [o.weight])` for `o` (x, and A0, B0 unless `base`). */
export function nbitsFeeds(o: NbitsOperands, form: NbitsForm): Record<string, HostTensor> {
  const { n, k } = o.weight;
  const feeds: Record<string, HostTensor> = { x: { type: "float32", dims: [o.m, k], data: o.x } };
  if (form === "base") return feeds;
  feeds.A0 = { type: "float32", dims: [o.r, k], data: o.a };
  feeds.B0 = { type: "float32", dims: [n, o.r], data: o.b };
  return feeds;
}
