/**
 * An adapter as session feeds. Every targetable module of the base gets an A/B pair: the adapter's
 * factors (B pre-multiplied by the module's PEFT scaling, which the graph leaves out) or, for
 * modules it does not target, shared rank-0 tensors that make the LoRA branch an empty product.
 * The training graph takes these per-module feeds; the fused decoder graph takes them packed per
 * vLLM packed module (`packLoraFeeds`).
 */
import * as ort from "onnxruntime-node";
import type { LoraALayout } from "../model-format/index.ts";
import type { ModelSpec, PackedModule, VerifiedAdapter } from "../model-spec/index.ts";
import { peftKey } from "../model-spec/index.ts";
import { toFloat32 } from "../safetensors/index.ts";

/** Feeds for one adapter version. Immutable once built, so a swap is one reference assignment. */
export type LoraFeeds = Readonly<Record<string, ort.Tensor>>;

/** The mark `baseFeeds` puts on its feeds (and `packLoraFeeds` keeps on their packed form). */
const BASE: unique symbol = Symbol("loracast.baseFeeds");

/**
 * Feeds of the base with no adapter (`baseFeeds`): rank-0 factors for every module, marked so that
 * a session with a decoder graph without LoRA inputs runs that instead (`DecoderSession.step`). The
 * mark is a non-enumerable symbol key: spreading base feeds into other feeds (`adapterFeeds`) or
 * iterating over them does not carry it.
 */
export type BaseFeeds = LoraFeeds & { readonly [BASE]: true };

/** Whether `feeds` are `baseFeeds`' (or their packed form): a request without an adapter. */
export function isBaseFeeds(feeds: LoraFeeds): feeds is BaseFeeds {
  return (feeds as Partial<BaseFeeds>)[BASE] === true;
}

function markBase(feeds: Record<string, ort.Tensor>): BaseFeeds {
  Object.defineProperty(feeds, BASE, { value: true, enumerable: false });
  return Object.freeze(feeds) as BaseFeeds;
}

const emptyCache = new WeakMap<ModelSpec, BaseFeeds>();

/**
 * Rank-0 factors for every module: the base model with no adapter, marked as such (`isBaseFeeds`).
 * One frozen object per spec.
 */
export function baseFeeds(spec: ModelSpec): BaseFeeds {
  const cached = emptyCache.get(spec);
  if (cached !== undefined) return cached;
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of spec.modules.values()) {
    feeds[peftKey(m.name, "A")] = new ort.Tensor("float32", new Float32Array(0), [0, m.inFeatures]);
    feeds[peftKey(m.name, "B")] = new ort.Tensor("float32", new Float32Array(0), [m.outFeatures, 0]);
  }
  const marked = markBase(feeds);
  emptyCache.set(spec, marked);
  return marked;
}

/** The session feeds for a verified adapter. */
export function adapterFeeds(spec: ModelSpec, adapter: VerifiedAdapter): LoraFeeds {
  const feeds: Record<string, ort.Tensor> = { ...baseFeeds(spec) };
  for (const m of adapter.modules) {
    const target = spec.modules.get(m.module);
    if (target === undefined) throw new Error(`adapter module ${m.module} is not in the base (verify first)`);
    const a = toFloat32(m.a.dtype, m.a.bytes);
    const b = toFloat32(m.b.dtype, m.b.bytes);
    for (let i = 0; i < b.length; i++) b[i] = Math.fround((b[i] ?? 0) * m.scaling);
    feeds[peftKey(m.module, "A")] = new ort.Tensor("float32", a, [m.rank, target.inFeatures]);
    feeds[peftKey(m.module, "B")] = new ort.Tensor("float32", b, [target.outFeatures, m.rank]);
  }
  return Object.freeze(feeds);
}

/** Feeds that `packLoraFeeds` made, and in which layout, so that packing them again returns them. */
const packedFeeds = new WeakMap<LoraFeeds, LoraALayout>();
const packCache: Record<LoraALayout, WeakMap<LoraFeeds, LoraFeeds>> = {
  rows: new WeakMap(),
  columns: new WeakMap(),
};

/** `[rows, cols]` row-major data as `[cols, rows]`. */
function transposed(t: ort.Tensor): ort.Tensor {
  const [rows = 0, cols = 0] = t.dims;
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j] ?? 0;
  return new ort.Tensor("float32", out, [cols, rows]);
}

/**
 * Per-module feeds (`adapterFeeds`, `baseFeeds`: PEFT keys, B already scaled) as the fused decoder
 * graph takes them: one A/B pair per layer and packed module (vLLM's `qkv_proj`, `gate_up_proj`,
 * ...), named by `peftKey` of the packed module. A is the members' A factors stacked, `[Σr, in]`;
 * B is block-diagonal, `[Σout, Σr]`: member i's B at its own rows and rank columns, zero elsewhere,
 * so `(x·Aᵀ)·Bᵀ` is each member's LoRA in its own output rows. An untargeted member is a rank-0
 * block; a group with no targeted member is a rank-0 pair (what a base-only request feeds).
 * With `aLayout` `columns` (the graph's `LoraForm` says, `loraALayout`), each packed A is stored
 * transposed, `[in, Σr]`.
 * Packing is done once per feeds object and layout (cached; feeds are immutable), and packed
 * feeds pass through unchanged; packed base feeds stay marked (`isBaseFeeds`). Throws when a
 * member's factors are missing or of the wrong shape, or when packed feeds of the other layout
 * are given.
 */
export function packLoraFeeds(
  spec: ModelSpec,
  groups: readonly PackedModule[],
  feeds: LoraFeeds,
  aLayout: LoraALayout = "rows",
): LoraFeeds {
  const packedAs = packedFeeds.get(feeds);
  if (packedAs === aLayout) return feeds;
  if (packedAs !== undefined) throw new Error(`LoRA feeds packed with A ${packedAs}, not ${aLayout}`);
  const cached = packCache[aLayout].get(feeds);
  if (cached !== undefined) return cached;
  const out: Record<string, ort.Tensor> = {};
  const inLayout = (a: ort.Tensor) => (aLayout === "columns" ? transposed(a) : a);
  for (let layer = 0; layer < spec.dims.numLayers; layer++) {
    for (const group of groups) {
      const members = group.modules.map((m) => {
        const name = `model.layers.${layer}.${m}`;
        const target = spec.modules.get(name);
        const a = feeds[peftKey(name, "A")];
        const b = feeds[peftKey(name, "B")];
        if (target === undefined || a === undefined || b === undefined)
          throw new Error(`LoRA feeds lack module ${name}`);
        const rank = a.dims[0] ?? 0;
        if (
          a.dims.join() !== `${rank},${target.inFeatures}` ||
          b.dims.join() !== `${target.outFeatures},${rank}`
        )
          throw new Error(`LoRA feeds for ${name}: A [${a.dims}] and B [${b.dims}] do not fit`);
        return { a: a.data as Float32Array, b: b.data as Float32Array, rank, ...target };
      });
      const packed = `model.layers.${layer}.${group.name}`;
      const only = members.length === 1 ? group.modules[0] : undefined;
      if (only !== undefined) {
        // A group of one module is its own pair.
        const name = `model.layers.${layer}.${only}`;
        out[peftKey(packed, "A")] = inLayout(feeds[peftKey(name, "A")] as ort.Tensor);
        out[peftKey(packed, "B")] = feeds[peftKey(name, "B")] as ort.Tensor;
        continue;
      }
      const inF = members[0]?.inFeatures ?? 0;
      const rank = members.reduce((s, m) => s + m.rank, 0);
      const outF = members.reduce((s, m) => s + m.outFeatures, 0);
      const a = new Float32Array(rank * inF);
      const b = new Float32Array(outF * rank);
      let [row, col] = [0, 0];
      for (const m of members) {
        a.set(m.a, col * inF);
        for (let o = 0; o < m.outFeatures; o++)
          b.set(m.b.subarray(o * m.rank, (o + 1) * m.rank), (row + o) * rank + col);
        row += m.outFeatures;
        col += m.rank;
      }
      out[peftKey(packed, "A")] = inLayout(new ort.Tensor("float32", a, [rank, inF]));
      out[peftKey(packed, "B")] = new ort.Tensor("float32", b, [outF, rank]);
    }
  }
  const frozen = isBaseFeeds(feeds) ? markBase(out) : Object.freeze(out);
  packedFeeds.set(frozen, aLayout);
  packCache[aLayout].set(feeds, frozen);
  return frozen;
}
