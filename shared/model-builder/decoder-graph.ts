/**
 * The Llama-family decoder as an ONNX graph (transformers' `modeling_llama.py`; Qwen2 adds biases
 * and sliding windows, `modeling_qwen2.py`). The hidden state is kept 2-D, `[tokens, hidden]`, so
 * every projection is one `Gemm` with `transB` on the HF `[out, in]` weight (or one `MatMulNBits`),
 * and each LoRA is two more `Gemm`s whose factors are graph inputs named by their PEFT keys. The
 * adapter's scaling is folded into `lora_B` by the runtime; untargeted modules get rank-0 factors,
 * which cost two empty Gemms.
 *
 * The KV cache has two interfaces. `present`: each step returns the whole cache, past and new
 * (what HF exports do, and what keeps a cache in GPU memory between steps). `append`: each step
 * returns only the keys and values it adds, and the runtime keeps the cache in its own buffers,
 * with spare columns masked out. On the CPU that is the cheaper one: onnxruntime-node copies every
 * output into a fresh buffer, and the whole cache as outputs cost a copy and garbage per step.
 */

import { IO } from "../model-format/index.ts";
import { peftKey } from "../model-spec/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import type { WeightPlan } from "./weights.ts";

/** Additive mask value for disallowed keys: float32's lowest, as transformers uses. */
const MASK_MIN = -3.4028234663852886e38;

interface Shapes {
  /** int64 [2]: batch, sequence */
  bs: string;
  /** 1-D int64 shape tensors, by purpose */
  bsQ: string;
  bsKv: string;
  bsKvHeads: string;
  bsGroups: string;
  flatQ: string;
}

/** Options of `buildDecoderGraph`: which interface the generated graph has. */
export interface DecoderGraphOptions {
  /** Add LoRA inputs for every targetable projection. @default true */
  lora?: boolean;
  /**
   * Take a `logits_positions` input and return logits only there. Without it the graph returns
   * logits for every position, the interface transformers.js and Optimum exports have. @default true
   */
  logitsPositions?: boolean;
  /** How the KV cache leaves a step (see the file comment). @default "present" */
  kvOutput?: KvOutput;
}

/**
 * How a step returns the KV cache: `present`, the whole cache (past and new); `append`, only the
 * step's new keys and values (see the file comment).
 */
export type KvOutput = "present" | "append";

/** The decoder up to the final hidden state, and the pieces a head builds on. */
export interface DecoderBody {
  /** float32 [tokens, hidden]: the last layer's output, before the final norm. */
  hidden: string;
  /** int64 [2]: batch, sequence */
  bs: string;
  /** LoRA factor inputs by PEFT key, in graph order. */
  loraInputs: string[];
  linear(x: string, module: string, inF: number, outF: number, bias: boolean): string;
  norm(x: string, weight: string): string;
}

/** Options of `buildDecoderBody`: LoRA inputs, and the KV cache (none for training). */
export interface DecoderBodyOptions {
  lora: boolean;
  /** Take `past_key_values.*` inputs and return the cache as `kvOutput` says; null for the training graph. */
  kvCache: KvOutput | null;
}

/**
 * Builds the generation graph into `g`: token ids, mask, positions, the KV cache and (by default)
 * the LoRA factors and `logits_positions` in; float32 logits `[batch, positions, vocab]` and the
 * cache out. I/O names are `IO`'s.
 */
export function buildDecoderGraph(
  g: GraphBuilder,
  arch: Architecture,
  w: WeightPlan,
  options: DecoderGraphOptions = {},
): void {
  const { hiddenSize: D, vocabSize: V } = arch.dims;
  const body = buildDecoderBody(g, arch, w, {
    lora: options.lora ?? true,
    kvCache: options.kvOutput ?? "present",
  });
  const { bs, hidden: h } = body;
  const i64 = (...v: number[]) => g.constant("int64", [v.length], v);
  const logitsPositions =
    (options.logitsPositions ?? true)
      ? g.input(IO.logitsPositions, "int64", ["batch", "logits_count"])
      : null;

  g.scoped("head", () => {
    let rows = h;
    let outShape = g.op1("Concat", [bs, i64(V)], { axis: attr.int(0) });
    if (logitsPositions !== null) {
      const h3 = g.op1("Reshape", [h, g.op1("Concat", [bs, i64(D)], { axis: attr.int(0) })]);
      const idx = g.op1("Unsqueeze", [logitsPositions, i64(-1)]);
      rows = g.op1("Reshape", [g.op1("GatherND", [h3, idx], { batch_dims: attr.int(1) }), i64(-1, D)]);
      outShape = g.op1("Concat", [g.op1("Shape", [logitsPositions]), i64(V)], { axis: attr.int(0) });
    }
    const logits2 = lmHead(body, arch, rows);
    g.op("Reshape", [logits2, outShape], {}, { names: [IO.logits] });
    g.output(IO.logits, "float32", ["batch", logitsPositions === null ? "sequence" : "logits_count", V]);
  });
}

/** Final norm and LM head over `[rows, hidden]`: logits `[rows, vocab]`. */
export function lmHead(body: DecoderBody, arch: Architecture, rows: string): string {
  const { hiddenSize: D, vocabSize: V, tieWordEmbeddings } = arch.dims;
  const flat = body.norm(rows, "model.norm.weight");
  return body.linear(flat, tieWordEmbeddings ? "model.embed_tokens" : "lm_head", D, V, false);
}

/**
 * Builds the decoder layers shared by the generation and training graphs (embedding, attention,
 * SwiGLU MLP, RMSNorm, optional KV cache), returning the last hidden state before the final norm.
 */
export function buildDecoderBody(
  g: GraphBuilder,
  arch: Architecture,
  w: WeightPlan,
  options: DecoderBodyOptions,
): DecoderBody {
  const { dims } = arch;
  const { hiddenSize: D, numHeads: H, numKvHeads: Hkv, headDim: d, vocabSize: V } = dims;
  const { lora } = options;
  const loraInputs: string[] = [];

  const inputIds = g.input(IO.inputIds, "int64", ["batch", "sequence"]);
  const mask = g.input(IO.attentionMask, "int64", ["batch", "total_sequence"]);
  const positionIds = g.input(IO.positionIds, "int64", ["batch", "sequence"]);

  const i64 = (...v: number[]) => g.constant("int64", [v.length], v);
  const bs = g.op1("Shape", [inputIds]);
  const shapes: Shapes = {
    bs,
    bsQ: g.op1("Concat", [bs, i64(H * d)], { axis: attr.int(0) }),
    bsKv: g.op1("Concat", [bs, i64(Hkv * d)], { axis: attr.int(0) }),
    bsKvHeads: g.op1("Concat", [bs, i64(Hkv, d)], { axis: attr.int(0) }),
    bsGroups: g.op1("Concat", [bs, i64(Hkv, H / Hkv, d)], { axis: attr.int(0) }),
    flatQ: i64(-1, H * d),
  };

  const rope = g.scoped("rope", () => ropeCaches(g, arch, positionIds, bs));
  const masks = g.scoped("mask", () => attentionMasks(g, arch, mask, positionIds, bs));

  const linear = (x: string, module: string, inF: number, outF: number, bias: boolean): string =>
    g.scoped(module.split(".").slice(-1)[0] ?? module, () => {
      const m = w.matrix(`${module}.weight`, outF, inF);
      const b = bias ? [w.vector(`${module}.bias`, [outF])] : [];
      let y: string;
      if (m.kind === "float") {
        y = g.op1("Gemm", [x, m.name, ...b], { transB: attr.int(1) });
      } else {
        const { layout } = m;
        y = g.op1(
          "MatMulNBits",
          [x, m.packed, m.scales, m.zeroPoints],
          {
            K: attr.int(inF),
            N: attr.int(outF),
            bits: attr.int(layout.bits),
            block_size: attr.int(layout.blockSize),
            accuracy_level: attr.int(m.accuracyLevel),
          },
          { domain: "com.microsoft" },
        );
        if (b[0] !== undefined) y = g.op1("Add", [y, b[0]]);
      }
      if (!lora || !module.startsWith("model.layers.")) return y;
      const a = g.input(peftKey(module, "A"), "float32", [`r.${module}`, inF]);
      const bMat = g.input(peftKey(module, "B"), "float32", [outF, `r.${module}`]);
      loraInputs.push(a, bMat);
      const u = g.op1("Gemm", [x, a], { transB: attr.int(1) });
      return g.op1("Gemm", [u, bMat, y], { transB: attr.int(1) });
    });

  const norm = (x: string, weight: string): string =>
    g.op1("SimplifiedLayerNormalization", [x, w.vector(weight, [D])], {
      axis: attr.int(-1),
      epsilon: attr.float(arch.rmsNormEps),
    });

  const embedded = g.op1("Gather", [w.vector("model.embed_tokens.weight", [V, D]), inputIds]);
  let h = g.op1("Reshape", [embedded, i64(-1, D)]);

  for (let layer = 0; layer < dims.numLayers; layer++) {
    const p = `model.layers.${layer}`;
    h = g.scoped(`layers.${layer}`, () => {
      const a = norm(h, `${p}.input_layernorm.weight`);
      const attnOut = g.scoped("attn", () => {
        const q = linear(a, `${p}.self_attn.q_proj`, D, H * d, arch.qkvBias);
        const k = linear(a, `${p}.self_attn.k_proj`, D, Hkv * d, arch.qkvBias);
        const v = linear(a, `${p}.self_attn.v_proj`, D, Hkv * d, arch.qkvBias);
        const o = attention(
          g,
          arch,
          layer,
          { q, k, v },
          shapes,
          rope,
          masks[layer] ?? masks[0] ?? "",
          options.kvCache,
        );
        return linear(o, `${p}.self_attn.o_proj`, H * d, D, arch.oBias);
      });
      const h1 = g.op1("Add", [h, attnOut]);
      const m = norm(h1, `${p}.post_attention_layernorm.weight`);
      const mlpOut = g.scoped("mlp", () => {
        const gate = linear(m, `${p}.mlp.gate_proj`, D, dims.intermediateSize, arch.mlpBias);
        const up = linear(m, `${p}.mlp.up_proj`, D, dims.intermediateSize, arch.mlpBias);
        const act = g.op1("Mul", [g.op1("Mul", [gate, g.op1("Sigmoid", [gate])]), up]);
        return linear(act, `${p}.mlp.down_proj`, dims.intermediateSize, D, arch.mlpBias);
      });
      return g.op1("Add", [h1, mlpOut]);
    });
  }

  return { hidden: h, bs, loraInputs, linear, norm };
}

/** cos/sin rows for every token, with row ids in the shape `RotaryEmbedding` indexes by. */
function ropeCaches(g: GraphBuilder, arch: Architecture, positionIds: string, bs: string) {
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
function attentionMasks(
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

function attention(
  g: GraphBuilder,
  arch: Architecture,
  layer: number,
  x: { q: string; k: string; v: string },
  s: Shapes,
  rope: { cos: string; sin: string; rows: string },
  mask: string,
  kvCache: KvOutput | null,
): string {
  const { numHeads: H, numKvHeads: Hkv, headDim: d } = arch.dims;
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
