/**
 * An adapter as session feeds. Every targetable module of the base gets an A/B pair: the adapter's
 * factors (B pre-multiplied by the module's PEFT scaling, which the graph leaves out) or, for
 * modules it does not target, shared rank-0 tensors that make the LoRA branch an empty product.
 */
import * as ort from "onnxruntime-node";
import type { ModelSpec, VerifiedAdapter } from "../model-spec/index.ts";
import { peftKey } from "../model-spec/index.ts";
import { toFloat32 } from "../safetensors/index.ts";

/** Feeds for one adapter version. Immutable once built, so a swap is one reference assignment. */
export type LoraFeeds = Readonly<Record<string, ort.Tensor>>;

const emptyCache = new WeakMap<ModelSpec, LoraFeeds>();

/** Rank-0 factors for every module: the base model with no adapter. */
export function baseFeeds(spec: ModelSpec): LoraFeeds {
  const cached = emptyCache.get(spec);
  if (cached !== undefined) return cached;
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of spec.modules.values()) {
    feeds[peftKey(m.name, "A")] = new ort.Tensor("float32", new Float32Array(0), [0, m.inFeatures]);
    feeds[peftKey(m.name, "B")] = new ort.Tensor("float32", new Float32Array(0), [m.outFeatures, 0]);
  }
  const frozen = Object.freeze(feeds);
  emptyCache.set(spec, frozen);
  return frozen;
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
