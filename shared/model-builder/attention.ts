/**
 * Attention of the Llama-family decoder as ONNX nodes: rotary caches, additive masks, and
 * grouped-query attention over an optional KV cache (transformers' `modeling_llama.py`,
 * `eager_attention_forward`). Split from `decoder-graph.ts` so that other attention kernels can sit
 * beside this one.
 */

import { IO } from "../model-format/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import type { KvOutput } from "./decoder-graph.ts";

/** Additive mask value for disallowed keys: float32's lowest, as transformers uses. */
const MASK_MIN = -3.4028234663852886e38;

/** 1-D int64 shape tensors the attention nodes reshape with, by purpose. */
export interface AttentionShapes {
  /** int64 [2]: batch, sequence */
  bs: string;
  /** 1-D int64 shape tensors, by purpose */
  bsQ: string;
  bsKv: string;
  bsKvHeads: string;
  bsGroups: string;
  flatQ: string;
}

/** cos/sin rows for every token, with row ids in the shape `RotaryEmbedding` indexes by. */
export function ropeCaches(g: GraphBuilder, arch: Architecture, positionIds: string, bs: string) {
  const half = arch.dims.headDim / 2;
  const pos = g.op1("Cast", [g.op1("Reshape", [positionIds, g.constant("int64", [2], [-1, 1])])], {
    to: attr.int(1),
  });
  const invFreq = g.initializer("rope.inv_freq", "float32", [1, half], arch.rope.invFreq);
  // One float32 product per element, as transformers' `inv_freq @ position_ids` computes it.
  const freqs = g.op1("Mul", [pos, invFreq]);
  let cos = g.op1("Cos", [freqs]);
  let sin = g.op1("Sin", [freqs]);
  if (arch.rope.attentionScaling !== 1) {
    const s = g.constant("float32", [], [arch.rope.attentionScaling]);
    cos = g.op1("Mul", [cos, s]);
    sin = g.op1("Mul", [sin, s]);
  }
  const tokens = g.op1("ReduceProd", [bs], { keepdims: attr.int(0) });
  const rows = g.op1("Reshape", [
    g.op1("Range", [g.constant("int64", [], [0]), tokens, g.constant("int64", [], [1])]),
    bs,
  ]);
  return { cos, sin, rows };
}

/**
 * Additive masks `[batch, 1, 1, seq, total]`: causal, padding, and the sliding window where set.
 * Causality goes by column (a step's new keys are the last columns); the window goes by position,
 * a key's being the count of real keys before it, so that masked columns inside a row (padding, or
 * the spare columns of a host cache) do not count as distance.
 */
export function attentionMasks(
  g: GraphBuilder,
  arch: Architecture,
  mask: string,
  positionIds: string,
  bs: string,
): string[] {
  const scalar = (v: number) => g.constant("int64", [], [v]);
  const total = g.op1("Gather", [g.op1("Shape", [mask]), scalar(1)], { axis: attr.int(0) });
  const seq = g.op1("Gather", [bs, scalar(1)], { axis: attr.int(0) });
  const past = g.op1("Sub", [total, seq]);
  const qcol = g.op1("Unsqueeze", [g.op1("Range", [past, total, scalar(1)]), g.constant("int64", [1], [1])]);
  const kcol = g.op1("Unsqueeze", [
    g.op1("Range", [scalar(0), total, scalar(1)]),
    g.constant("int64", [1], [0]),
  ]);
  const causal = g.op1("LessOrEqual", [kcol, qcol]);
  const padding = g.op1("Unsqueeze", [
    g.op1("Cast", [mask], { to: attr.int(9) }),
    g.constant("int64", [1], [1]),
  ]);
  const allowed = g.op1("And", [causal, padding]);
  const zero = g.constant("float32", [], [0]);
  const min = g.constant("float32", [], [MASK_MIN]);
  const additive = (allow: string) =>
    g.op1("Unsqueeze", [g.op1("Where", [allow, zero, min]), g.constant("int64", [2], [1, 2])]);
  const full = additive(allowed);
  const byWindow = new Map<number, string>();
  let distance: string | null = null;
  return arch.slidingWindow.map((window) => {
    if (window === null) return full;
    const cached = byWindow.get(window);
    if (cached !== undefined) return cached;
    distance ??= (() => {
      const kpos = g.op1("Sub", [g.op1("CumSum", [mask, scalar(1)]), scalar(1)]);
      // [batch, seq, 1] − [batch, 1, total]
      return g.op1("Sub", [
        g.op1("Unsqueeze", [positionIds, g.constant("int64", [1], [2])]),
        g.op1("Unsqueeze", [kpos, g.constant("int64", [1], [1])]),
      ]);
    })();
    const m = additive(g.op1("And", [allowed, g.op1("Less", [distance, scalar(window)])]));
    byWindow.set(window, m);
    return m;
  });
}

/**
 * The projections attention reads: q, k and v apart (`float32 [tokens, heads·headDim]` each), or
 * packed as one `float32 [tokens, (H + 2·Hkv)·headDim]` tensor, the output of a fused QKV
 * projection with q's columns, then k's, then v's (vLLM's `qkv_proj`).
 */
export type QkvInput = { q: string; k: string; v: string } | { qkv: string };

/**
 * One layer's attention: q, k, v in (`QkvInput`; a packed tensor is split here), rotary applied
 * (`com.microsoft` RotaryEmbedding), the cache concatenated and returned as `kvCache` says, the
 * output `float32 [tokens, heads·headDim]` before `o_proj`.
 */
export function attention(
  g: GraphBuilder,
  arch: Architecture,
  layer: number,
  input: QkvInput,
  s: AttentionShapes,
  rope: { cos: string; sin: string; rows: string },
  mask: string,
  kvCache: KvOutput | null,
): string {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = arch.dims;
  const x = "qkv" in input ? splitQkv(g, arch, input.qkv) : input;
  const rotary = (t: string, heads: number) =>
    g.op1(
      "RotaryEmbedding",
      [t, rope.rows, rope.cos, rope.sin],
      { num_heads: attr.int(heads), interleaved: attr.int(0) },
      { domain: "com.microsoft" },
    );

  const q = rotary(g.op1("Reshape", [x.q, s.bsQ]), H);
  // [B,S,Hkv,g,d] → [B,Hkv,g,S,d]: each query head sits beside the KV head it shares (⌊h/g⌋).
  const qg = g.op1("Transpose", [g.op1("Reshape", [q, s.bsGroups])], { perm: attr.ints([0, 2, 3, 1, 4]) });

  const appended = kvCache === "append";
  const heads = (t: string, name: string) =>
    g.op1(
      "Transpose",
      [g.op1("Reshape", [t, s.bsKvHeads])],
      { perm: attr.ints([0, 2, 1, 3]) },
      appended ? { names: [name] } : {},
    );
  const k = heads(rotary(g.op1("Reshape", [x.k, s.bsKv]), Hkv), IO.appendedKey(layer));
  const v = heads(x.v, IO.appendedValue(layer));
  let [presentK, presentV] = [k, v];
  if (kvCache !== null) {
    const pastK = g.input(IO.pastKey(layer), "float32", ["batch", Hkv, "past_sequence", d]);
    const pastV = g.input(IO.pastValue(layer), "float32", ["batch", Hkv, "past_sequence", d]);
    const named = (name: string) => (appended ? {} : { names: [name] });
    presentK = g.op1("Concat", [pastK, k], { axis: attr.int(2) }, named(IO.presentKey(layer)));
    presentV = g.op1("Concat", [pastV, v], { axis: attr.int(2) }, named(IO.presentValue(layer)));
    const [outK, outV, length] = appended
      ? [IO.appendedKey(layer), IO.appendedValue(layer), "sequence"]
      : [IO.presentKey(layer), IO.presentValue(layer), "total_sequence"];
    g.output(outK, "float32", ["batch", Hkv, length, d]);
    g.output(outV, "float32", ["batch", Hkv, length, d]);
  }

  const unsq = g.constant("int64", [1], [2]);
  const kT = g.op1("Transpose", [g.op1("Unsqueeze", [presentK, unsq])], { perm: attr.ints([0, 1, 2, 4, 3]) });
  const scores = g.op1("Mul", [g.op1("MatMul", [qg, kT]), g.constant("float32", [], [d ** -0.5])]);
  const probs = g.op1("Softmax", [g.op1("Add", [scores, mask])], { axis: attr.int(-1) });
  const ctx = g.op1("MatMul", [probs, g.op1("Unsqueeze", [presentV, unsq])]);
  // [B,Hkv,g,S,d] → [B,S,Hkv,g,d] → [tokens, H·d]
  const merged = g.op1("Transpose", [ctx], { perm: attr.ints([0, 3, 1, 2, 4]) });
  return g.op1("Reshape", [merged, s.flatQ]);
}

/** Splits a packed `[tokens, (H + 2·Hkv)·d]` projection into q, k and v: one `Split` node. */
function splitQkv(g: GraphBuilder, arch: Architecture, qkv: string): { q: string; k: string; v: string } {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = arch.dims;
  const [q = "", k = "", v = ""] = g.op(
    "Split",
    [qkv, g.constant("int64", [3], [H * d, Hkv * d, Hkv * d])],
    { axis: attr.int(1) },
    { outputs: 3 },
  );
  return { q, k, v };
}
