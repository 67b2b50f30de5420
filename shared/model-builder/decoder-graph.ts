/**
 * The Llama-family decoder as an ONNX graph (transformers' `modeling_llama.py`; Qwen2 adds biases
 * and sliding windows, `modeling_qwen2.py`). The hidden state is kept 2-D, `[tokens, hidden]`, so
 * every projection is one `Gemm` with `transB` on the HF `[out, in]` weight (or one `MatMulNBits`),
 * and each LoRA is two more `Gemm`s whose factors are graph inputs named by their PEFT keys (or,
 * with `loraOp: "shrink-expand"`, one fused `ai.loracast` `LoraShrinkExpand` node: `LoraOp`). The
 * adapter's scaling is folded into `lora_B` by the runtime; untargeted modules get rank-0 factors,
 * which cost two empty Gemms (one empty fused node).
 *
 * Two layouts. `per-module` (the training graph's): one projection and one LoRA pair per HF module,
 * as above. `fused` (the generation graphs', built for a GPU's fixed cost per node): q/k/v and
 * gate/up are one projection each over row-concatenated weights, each residual add and the
 * RMSNorm after it are one `SkipSimplifiedLayerNormalization`, and LoRA is one pair per vLLM
 * packed module (`fused-layers.ts`).
 *
 * The KV cache has two interfaces. `present`: each step returns the whole cache, past and new
 * (what HF exports do, and what keeps a cache in GPU memory between steps). `append`: each step
 * returns only the keys and values it adds, and the runtime keeps the cache in its own buffers,
 * with spare columns masked out. On the CPU that is the cheaper one: onnxruntime-node copies every
 * output into a fresh buffer, and the whole cache as outputs cost a copy and garbage per step.
 */

import {
  IO,
  type KvCacheDtype,
  LORA_SHRINK_EXPAND,
  type LoraForm,
  type LoraOp,
  loraALayout,
  MATMUL_NBITS_LORA,
} from "../model-format/index.ts";
import { peftKey } from "../model-spec/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import { type AttentionShapes, attention, attentionMasks, type QkvInput, ropeCaches } from "./attention.ts";
import { gqaAttention, gqaShared, gqaUnsupported } from "./attention-gqa.ts";
import { fusedLayers } from "./fused-layers.ts";
import { loraDown, loraUp } from "./lora-forms.ts";
import type { Matrix, WeightPlan } from "./weights.ts";

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
  /** Projections and LoRA per HF module or fused (see the file comment). @default "fused" */
  layout?: DecoderLayout;
  /** Which attention the layers use (`DecoderAttention`). @default "ops" */
  attention?: DecoderAttention;
  /** The KV cache's element type; `float16` needs `attention: "gqa"`. @default "float32" */
  kvCacheDtype?: KvCacheDtype;
  /** How each LoRA pair's first product is computed (`lora-forms.ts`). @default "gemm" */
  loraForm?: LoraForm;
  /**
   * How each LoRA branch is computed (`LoraOp`): ONNX ops (`gemm`, the first product in `loraForm`),
   * or one fused node (`shrink-expand`, with `loraForm` `gemm` only). @default "gemm"
   */
  loraOp?: LoraOp;
}

/**
 * The decoder's attention: `ops`, plain ONNX ops over an additive mask (`attention.ts`; the inputs
 * are `attention_mask` and `position_ids`, rows left-padded); `gqa`, one ORT GroupQueryAttention
 * node per layer (`attention-gqa.ts`; the inputs are `seqlens_k` and `total_sequence_length`, rows
 * right-padded). Building `gqa` for an architecture it cannot run throws (`gqaUnsupported`).
 */
export type DecoderAttention = "ops" | "gqa";

/**
 * How the decoder's projections, norms and LoRA inputs are laid out (see the file comment):
 * `per-module`, one of each per HF module; `fused`, per vLLM packed module, with skip norms.
 */
export type DecoderLayout = "per-module" | "fused";

/**
 * How a step returns the KV cache: `present`, the whole cache (past and new); `append`, only the
 * step's new keys and values (see the file comment).
 */
export type KvOutput = "present" | "append";

/** The decoder up to the final hidden state, and the pieces a head builds on. */
export interface DecoderBody {
  /** float32 [tokens, hidden]: the last layer's output, after the final norm when `normed`. */
  hidden: string;
  /** The final norm is applied already (the fused layout folds it into the last residual add). */
  normed: boolean;
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
  /** @default "per-module" (the training graph's, with a LoRA pair per HF module) */
  layout?: DecoderLayout;
  /** @default "ops"; `gqa` needs a KV cache. */
  attention?: DecoderAttention;
  /** @default "float32"; `float16` (`attention-gqa.ts`) needs `attention: "gqa"`. */
  kvCacheDtype?: KvCacheDtype;
  /** @default "gemm" (`lora-forms.ts`; the training graph's, whose feeds are PEFT's layout) */
  loraForm?: LoraForm;
  /** @default "gemm" (`LoraOp`; the training graph's, whose backward needs the Gemms) */
  loraOp?: LoraOp;
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
    layout: options.layout ?? "fused",
    attention: options.attention ?? "ops",
    kvCacheDtype: options.kvCacheDtype ?? "float32",
    loraForm: options.loraForm ?? "gemm",
    loraOp: options.loraOp ?? "gemm",
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
  const flat = body.normed ? rows : body.norm(rows, "model.norm.weight");
  return body.linear(flat, tieWordEmbeddings ? "model.embed_tokens" : "lm_head", D, V, false);
}

/**
 * Builds the decoder layers shared by the generation and training graphs (embedding, attention,
 * SwiGLU MLP, RMSNorm, optional KV cache) in the given layout, returning the last hidden state:
 * before the final norm in the per-module layout, after it in the fused one.
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
  const loraForm = options.loraForm ?? "gemm";
  const loraOp = options.loraOp ?? "gemm";
  const loraInputs: string[] = [];

  const inputIds = g.input(IO.inputIds, "int64", ["batch", "sequence"]);
  const i64 = (...v: number[]) => g.constant("int64", [v.length], v);
  const bs = g.op1("Shape", [inputIds]);
  /** One layer's attention over its projections, with the cache as `options.kvCache` says. */
  const attend = ((): ((layer: number, x: QkvInput) => string) => {
    const kvCache = options.kvCache;
    const dtype = options.kvCacheDtype ?? "float32";
    if (options.attention === "gqa") {
      const why = gqaUnsupported(arch);
      if (why !== null) throw new Error(`GroupQueryAttention cannot run this model: ${why}`);
      if (kvCache === null) throw new Error("GroupQueryAttention graphs have a KV cache");
      const shared = g.scoped("gqa", () => gqaShared(g, w, arch, bs, kvCache, dtype));
      return (layer, x) => gqaAttention(g, arch, layer, x, shared, kvCache);
    }
    if (dtype !== "float32") throw new Error(`a ${dtype} KV cache needs GroupQueryAttention`);
    const mask = g.input(IO.attentionMask, "int64", ["batch", "total_sequence"]);
    const positionIds = g.input(IO.positionIds, "int64", ["batch", "sequence"]);
    const shapes: AttentionShapes = {
      bs,
      bsQ: g.op1("Concat", [bs, i64(H * d)], { axis: attr.int(0) }),
      bsKv: g.op1("Concat", [bs, i64(Hkv * d)], { axis: attr.int(0) }),
      bsKvHeads: g.op1("Concat", [bs, i64(Hkv, d)], { axis: attr.int(0) }),
      bsGroups: g.op1("Concat", [bs, i64(Hkv, H / Hkv, d)], { axis: attr.int(0) }),
      flatQ: i64(-1, H * d),
    };
    const rope = g.scoped("rope", () => ropeCaches(g, arch, positionIds, bs));
    const masks = g.scoped("mask", () => attentionMasks(g, arch, mask, positionIds, bs));
    return (layer, x) => attention(g, arch, layer, x, shapes, rope, masks[layer] ?? masks[0] ?? "", kvCache);
  })();

  const linear = (x: string, module: string, inF: number, outF: number, bias: boolean): string =>
    g.scoped(module.split(".").slice(-1)[0] ?? module, () => {
      const m = w.matrix(`${module}.weight`, outF, inF);
      const b = bias ? w.vector(`${module}.bias`, [outF]) : null;
      if (!lora || !module.startsWith("model.layers.")) return project(g, x, m, inF, outF, b);
      return projectWithLora(g, x, m, b, { module, inF, outF, form: loraForm, op: loraOp }, loraInputs);
    });

  const norm = (x: string, weight: string): string =>
    g.op1("SimplifiedLayerNormalization", [x, w.vector(weight, [D])], {
      axis: attr.int(-1),
      epsilon: attr.float(arch.rmsNormEps),
    });

  const embedded = g.op1("Gather", [w.vector("model.embed_tokens.weight", [V, D]), inputIds]);
  let h = g.op1("Reshape", [embedded, i64(-1, D)]);

  if (options.layout === "fused") {
    const hidden = fusedLayers({ g, arch, w, lora, loraForm, loraOp, loraInputs, attend }, h);
    return { hidden, normed: true, bs, loraInputs, linear, norm };
  }

  for (let layer = 0; layer < dims.numLayers; layer++) {
    const p = `model.layers.${layer}`;
    h = g.scoped(`layers.${layer}`, () => {
      const a = norm(h, `${p}.input_layernorm.weight`);
      const attnOut = g.scoped("attn", () => {
        const q = linear(a, `${p}.self_attn.q_proj`, D, H * d, arch.qkvBias);
        const k = linear(a, `${p}.self_attn.k_proj`, D, Hkv * d, arch.qkvBias);
        const v = linear(a, `${p}.self_attn.v_proj`, D, Hkv * d, arch.qkvBias);
        const o = attend(layer, { q, k, v });
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

  return { hidden: h, normed: false, bs, loraInputs, linear, norm };
}

/**
 * `x · Wᵀ (+ bias)` for a `[outF, inF]` weight: one `Gemm` (bias as its C), or one `MatMulNBits`
 * and an `Add` for the bias (`MatMulNBits`' own bias input is not implemented by every EP's kernel).
 */
export function project(
  g: GraphBuilder,
  x: string,
  m: Matrix,
  inF: number,
  outF: number,
  bias: string | null,
): string {
  const b = bias === null ? [] : [bias];
  if (m.kind === "float") return g.op1("Gemm", [x, m.name, ...b], { transB: attr.int(1) });
  const { layout } = m;
  const y = g.op1(
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
  return bias === null ? y : g.op1("Add", [y, bias]);
}

/**
 * One projection's LoRA pair as `loraBranch` builds it: its module (plain or packed), shape, form
 * and op.
 */
export interface LoraPair {
  module: string;
  inF: number;
  outF: number;
  form: LoraForm;
  op: LoraOp;
}

/**
 * The LoRA branch of one projection (`pair.module`, plain or packed): inputs `lora_A`, `[r, inF]` or
 * `[inF, r]` as `loraALayout(pair.form)` says, and `lora_B` `[outF, r]` (B scaled by the runtime);
 * `y + (x · Aᵀ) · Bᵀ`. With `op` `gemm`: the first product in `pair.form` (`lora-forms.ts`), the
 * second one `Gemm` with the base output `y` as its C; with `shrink-expand`: one
 * `LORA_SHRINK_EXPAND` node over `(x, A, B, y)` (form `gemm` only, a RangeError otherwise). The
 * inputs are appended to `loraInputs`.
 */
function loraBranch(g: GraphBuilder, x: string, y: string, pair: LoraPair, loraInputs: string[]): string {
  const { a, b } = loraPairInputs(g, pair, loraInputs);
  if (pair.op === "shrink-expand")
    return g.op1(LORA_SHRINK_EXPAND.opType, [x, a, b, y], {}, { domain: LORA_SHRINK_EXPAND.domain });
  return loraUp(g, loraDown(g, pair.form, x, a, pair.inF), b, y);
}

/** `pair`'s graph inputs `lora_A` and `lora_B` (`loraBranch` says their shapes), appended to `loraInputs`. */
function loraPairInputs(g: GraphBuilder, pair: LoraPair, loraInputs: string[]): { a: string; b: string } {
  const { module, inF, outF, form, op } = pair;
  if (op === "shrink-expand" && form !== "gemm")
    throw new RangeError(`loraOp shrink-expand takes lora_A as PEFT's [r, in]: not with loraForm ${form}`);
  const rank = `r.${module}`;
  const aDims = loraALayout(form) === "rows" ? [rank, inF] : [inF, rank];
  const a = g.input(peftKey(module, "A"), "float32", aDims);
  const b = g.input(peftKey(module, "B"), "float32", [outF, rank]);
  loraInputs.push(a, b);
  return { a, b };
}

/**
 * A LoRA-targeted projection, `x · Wᵀ (+ bias) + (x · Aᵀ) · Bᵀ` for a `[pair.outF, pair.inF]`
 * weight `m`. With `loraOp` `shrink-expand` and a 4-bit `MatMulNBits` weight: one
 * `MATMUL_NBITS_LORA` node with the weight's block size and accuracy level, the base projection and
 * the branch in one kernel (the branch as its own node costs more than an average kernel of the
 * decoder on the GPU: docs/benchmarks.md), then the bias's `Add`. Otherwise `project` then `loraBranch`. The LoRA inputs are appended to
 * `loraInputs`; throws `loraBranch`'s RangeError.
 */
export function projectWithLora(
  g: GraphBuilder,
  x: string,
  m: Matrix,
  bias: string | null,
  pair: LoraPair,
  loraInputs: string[],
): string {
  if (pair.op !== "shrink-expand" || m.kind !== "nbits" || m.layout.bits !== 4)
    return loraBranch(g, x, project(g, x, m, pair.inF, pair.outF, bias), pair, loraInputs);
  const { a, b } = loraPairInputs(g, pair, loraInputs);
  const y = g.op1(
    MATMUL_NBITS_LORA.opType,
    [x, m.packed, m.scales, m.zeroPoints, a, b],
    {
      K: attr.int(pair.inF),
      N: attr.int(pair.outF),
      bits: attr.int(m.layout.bits),
      block_size: attr.int(m.layout.blockSize),
      accuracy_level: attr.int(m.accuracyLevel),
    },
    { domain: MATMUL_NBITS_LORA.domain },
  );
  return bias === null ? y : g.op1("Add", [y, bias]);
}
