/**
 * Attention as one `com.microsoft.GroupQueryAttention` (GQA) node per layer: rotary, the KV cache
 * update and attention in one kernel, where `attention.ts` spends about 22 nodes. On a GPU every
 * node costs a fixed ~8 µs (CUDA EP) to ~14 µs (WebGPU) from Node (docs/architecture.md), so this is
 * the decoder's attention for GPU builds; the training graph keeps `attention.ts` (GQA has no
 * gradient kernel).
 *
 * What the op does (ORT v1.29.0; `docs/ContribOperators.md` and
 * `onnxruntime/contrib_ops/{cpu,cuda,webgpu}/bert/group_query_attention*` in microsoft/onnxruntime;
 * the CPU facts below were also checked by running onnxruntime-node 1.29.0's CPU kernel):
 * - Inputs: `query` `[B, S, H·d]` (or packed QKV `[B, S, (H + 2·Hkv)·d]` with `key`/`value` absent),
 *   `key`/`value` `[B, S, Hkv·d]`, `past_key`/`past_value` BNSH `[B, Hkv, P, d]`, `seqlens_k` int32
 *   `[B]` (each row's keys after this step, minus one), `total_sequence_length` int32 scalar (the
 *   longest row's keys after this step), `cos_cache`/`sin_cache` `[≥ total, d/2]` with `do_rotary`;
 *   optional `position_ids`, `attention_bias`, `head_sink`. Outputs: `output` `[B, S, H·d]` and
 *   `present_key`/`present_value` `[B, Hkv, max(total, P), d]`.
 * - Padding is on the right, per row: row b's keys are columns `[0, seqlens_k[b] + 1)` of the cache;
 *   a step writes its new keys at column `seqlens_k[b] + 1 − S` (0 for a first prompt, S = total) and
 *   rotates token s at position `that + s`. So a row's key column is its position: the layout has no
 *   gaps, and `position_ids` need not be fed. Columns past a row's length are never read, so a cache
 *   wider than its rows (the CPU's spare columns) needs no mask.
 * - Causal always; `local_window_size` W keeps keys at distance < W (transformers' `sliding_window`).
 *   Checked on the CPU kernel against a float64 reference: 5e-8 worst.
 * - S > 1 with a past (a "subsequent prompt") is refused unless B = 1; the runtime never does that
 *   (prefills have no past, decode steps have S = 1).
 * - Dtypes: CPU float32 only at v1.29.0 (the kernel is registered for float), float32 and float16
 *   at v1.30.0; WebGPU float32 and float16; CUDA float16 and bfloat16 only (plus int8/fp8 caches),
 *   so a float32 graph's GQA nodes would fall back to the CPU EP with host copies around each.
 *   `kvCacheDtype: "float16"` builds the CUDA form: q, k, v (or the packed qkv) and the rotary
 *   tables cast to float16 before the node, its output cast back to float32, the cache float16
 *   (`past_key_values.*`, `present.*`, `appended.*`); weights, LoRA, norms and logits stay float32.
 *   It costs 2 Casts per layer (4 with q, k, v apart) and 2 in all for the tables.
 * - CUDA refuses `attention_bias` ("not supported in GroupQueryAttention cuda kernel"), which is
 *   why padding must be expressed through `seqlens_k`, not an additive mask. WebGPU computes the
 *   rotary positions from `seqlens_k` too and ignores `position_ids`.
 * - Shared past/present ("static KV buffer"): the CUDA and WebGPU kernels detect `past_key` and
 *   `present_key` being the same memory and then write in place (CUDA's XQA decode kernel requires
 *   it). That needs I/O binding of one device buffer to both, which onnxruntime-node does not
 *   expose; without it present is past plus the new columns, and the kernel copies the past.
 * - Head size must be a multiple of 8, and of 16 with rotary (`CheckInputs`).
 */

import { IO, type KvCacheDtype } from "../model-format/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import type { QkvInput } from "./attention.ts";
import type { KvOutput } from "./decoder-graph.ts";
import type { WeightPlan } from "./weights.ts";

/** ONNX TensorProto.DataType of float16 and float32, for `Cast`'s `to`. */
const FLOAT16 = 10;
const FLOAT32 = 1;

/** Why an architecture cannot use GQA, or null when it can. */
export function gqaUnsupported(arch: Architecture): string | null {
  const { numHeads, numKvHeads, headDim } = arch.dims;
  // GroupQueryAttention's CheckInputs refuses rotary with other head sizes.
  if (headDim % 16 !== 0) return `head_dim ${headDim} is not a multiple of 16 (GroupQueryAttention's rotary)`;
  if (numHeads % numKvHeads !== 0) return `num_heads ${numHeads} is not a multiple of num_kv_heads`;
  return null;
}

/** The inputs every GQA layer shares: per-row key counts, the longest row, and the rotary tables. */
export interface GqaShared {
  /** int32 [batch]: each row's keys after this step, minus one (ORT's `seqlens_k`). */
  seqlensK: string;
  /** int32 scalar: the longest row's keys after this step. */
  total: string;
  /** [total, headDim/2] in the cache's dtype: cos and sin of every position up to `total`. */
  cos: string;
  sin: string;
  /** The KV cache's element type, which GroupQueryAttention computes in. */
  dtype: KvCacheDtype;
  /** int64 [3]: batch, sequence, -1, to make the 2-D projections 3-D. */
  bsAny: string;
  /** Present only with the `append` interface: where each row's new keys sit in `present`. */
  appendIndex: string | null;
}

/**
 * One rotary table, `float32 [rows, headDim/2]`: `f(p · inv_freq[i]) · attention_scaling` for every
 * position p below `rows` and frequency i, with `f` cos or sin, each product rounded to float32 as
 * `attention.ts`'s `rotaryTables` computes it in the graph (transformers' `LlamaRotaryEmbedding`),
 * so both attentions rotate by the same angles.
 */
export function rotaryTable(arch: Architecture, rows: number, f: (angle: number) => number): Float32Array {
  const { invFreq, attentionScaling } = arch.rope;
  const half = invFreq.length;
  const scale = Math.fround(attentionScaling);
  const table = new Float32Array(rows * half);
  for (let p = 0; p < rows; p++) {
    for (let i = 0; i < half; i++) {
      // Float32Array stores round to float32, as the graph's float32 Mul does.
      table[p * half + i] = Math.fround(f(Math.fround(p * (invFreq[i] ?? 0)))) * scale;
    }
  }
  return table;
}

/**
 * The graph inputs GQA needs (`IO.seqlensK`, `IO.totalSequenceLength`) and the rotary tables as
 * constants of `arch.maxPositions` rows (`rotaryTable`), in the data file; cast to float16
 * for a float16 cache (`dtype`), a Cast ORT folds at load.
 */
export function gqaShared(
  g: GraphBuilder,
  w: WeightPlan,
  arch: Architecture,
  bs: string,
  kvCache: KvOutput,
  dtype: KvCacheDtype,
): GqaShared {
  const { numKvHeads: Hkv, headDim: d } = arch.dims;
  const seqlensK = g.input(IO.seqlensK, "int32", ["batch"]);
  const total = g.input(IO.totalSequenceLength, "int32", []);
  const i64 = (...v: number[]) => g.constant("int64", [v.length], v);
  const scalar = (v: number) => g.constant("int64", [], [v]);
  // Constant tables of every position the model takes, not a Range over `total_sequence_length`:
  // that subgraph ran on the CPU with host↔device copies around it, which ORT's CUDA graph capture
  // refuses ("all compute graph nodes have not been partitioned", docs/benchmarks.md).
  const rows = arch.maxPositions;
  const half = arch.dims.headDim / 2;
  const tables = {
    cos: w.computed("gqa.cos_cache", [rows, half], () => rotaryTable(arch, rows, Math.cos)),
    sin: w.computed("gqa.sin_cache", [rows, half], () => rotaryTable(arch, rows, Math.sin)),
  };
  const cast = (t: string) => (dtype === "float16" ? g.op1("Cast", [t], { to: attr.int(FLOAT16) }) : t);
  let appendIndex: string | null = null;
  if (kvCache === "append") {
    // Row b's new keys are present's columns start_b + s, start_b = max(0, seqlens_k[b] + 1 − S)
    // (0 for a first prompt, whose rows all start at column 0).
    const seq = g.op1("Gather", [bs, scalar(1)], { axis: attr.int(0) });
    const after = g.op1("Add", [g.op1("Cast", [seqlensK], { to: attr.int(7) }), scalar(1)]);
    const start = g.op1("Max", [g.op1("Sub", [after, seq]), scalar(0)]);
    const cols = g.op1("Add", [
      g.op1("Unsqueeze", [start, i64(1)]),
      g.op1("Range", [scalar(0), seq, scalar(1)]),
    ]);
    // [B, S] → [B, 1, S, 1] → [B, Hkv, S, d], GatherElements' index into present's axis 2.
    appendIndex = g.op1("Expand", [g.op1("Unsqueeze", [cols, i64(1, 3)]), i64(1, Hkv, 1, d)]);
  }
  return {
    seqlensK,
    total,
    cos: cast(tables.cos),
    sin: cast(tables.sin),
    dtype,
    bsAny: g.op1("Concat", [bs, i64(-1)], { axis: attr.int(0) }),
    appendIndex,
  };
}

/**
 * One layer's attention: q, k, v `float32 [tokens, heads·headDim]` in (or one packed
 * `[tokens, (H + 2·Hkv)·headDim]`), the output `float32 [tokens, H·headDim]` before `o_proj`. The
 * cache goes in as `past_key_values.*` (right-padded rows, see the file comment) and out as
 * `kvCache` says: `present.*`, or only this step's keys and values as `appended.*`; its element
 * type is `s.dtype`, and with float16 the node computes in float16 between Casts.
 */
export function gqaAttention(
  g: GraphBuilder,
  arch: Architecture,
  layer: number,
  x: QkvInput,
  s: GqaShared,
  kvCache: KvOutput,
): string {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = arch.dims;
  const half = s.dtype === "float16";
  const to3d = (t: string) =>
    g.op1("Reshape", [half ? g.op1("Cast", [t], { to: attr.int(FLOAT16) }) : t, s.bsAny]);
  // GQA takes the packed projection as it is (`key`/`value` absent), or the three apart.
  const qkv = "qkv" in x ? [to3d(x.qkv), "", ""] : [to3d(x.q), to3d(x.k), to3d(x.v)];
  const cacheDims = (seq: string) => ["batch", Hkv, seq, d];
  const pastK = g.input(IO.pastKey(layer), s.dtype, cacheDims("past_sequence"));
  const pastV = g.input(IO.pastValue(layer), s.dtype, cacheDims("past_sequence"));
  const present = kvCache === "present";
  const window = arch.slidingWindow[layer] ?? null;
  const [out, presentK, presentV] = g.op(
    "GroupQueryAttention",
    [...qkv, pastK, pastV, s.seqlensK, s.total, s.cos, s.sin],
    {
      num_heads: attr.int(H),
      kv_num_heads: attr.int(Hkv),
      do_rotary: attr.int(1),
      rotary_interleaved: attr.int(0),
      ...(window === null ? {} : { local_window_size: attr.int(window) }),
    },
    {
      domain: "com.microsoft",
      ...(present ? { names: [`gqa.${layer}.output`, IO.presentKey(layer), IO.presentValue(layer)] } : {}),
      outputs: 3,
    },
  ) as [string, string, string];
  if (present) {
    g.output(IO.presentKey(layer), s.dtype, cacheDims("total_sequence"));
    g.output(IO.presentValue(layer), s.dtype, cacheDims("total_sequence"));
  } else {
    const index = s.appendIndex ?? "";
    g.op("GatherElements", [presentK, index], { axis: attr.int(2) }, { names: [IO.appendedKey(layer)] });
    g.op("GatherElements", [presentV, index], { axis: attr.int(2) }, { names: [IO.appendedValue(layer)] });
    g.output(IO.appendedKey(layer), s.dtype, cacheDims("sequence"));
    g.output(IO.appendedValue(layer), s.dtype, cacheDims("sequence"));
  }
  const flat = g.op1("Reshape", [out, g.constant("int64", [2], [-1, H * d])]);
  return half ? g.op1("Cast", [flat], { to: attr.int(FLOAT32) }) : flat;
}
