import { createHash } from "node:crypto";
import { PROJECTIONS, type ProjectionWidth } from "../architectures/index.ts";
import type { DecoderDims } from "./hf-config.ts";

/** One Linear a LoRA may target: its HF module path and its weight's in/out features. */
export interface TargetModule {
  /** HF module path, e.g. `model.layers.3.self_attn.q_proj`. */
  name: string;
  layer: number;
  inFeatures: number;
  outFeatures: number;
}

/** What a generator checks adapters against: every targetable module of one base, and its fingerprint. */
export interface ModelSpec {
  dims: DecoderDims;
  modules: ReadonlyMap<string, TargetModule>;
  /**
   * The base fingerprint, `spec-sha256:` + hex sha256 over the canonical dims and module map: two bases
   * with equal fingerprints take the same adapters. The one adapter manifests carry (`base.fingerprint`),
   * whether the base came from a `config.json` or from built artifacts (`readModelManifest`).
   */
  fingerprint: string;
}

/** The PEFT state-dict key of a module's LoRA tensor. */
export function peftKey(module: string, which: "A" | "B"): string {
  return `base_model.model.${module}.lora_${which}.weight`;
}

const PEFT_KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** Splits a PEFT key into its module path and which factor it holds, or null if it is not a LoRA weight. */
export function parsePeftKey(key: string): { module: string; which: "A" | "B" } | null {
  const m = PEFT_KEY.exec(key);
  if (m === null || m[1] === undefined) return null;
  return { module: m[1], which: m[2] as "A" | "B" };
}

/**
 * The module map of a Llama-family decoder (llama, qwen2, mistral): for each layer the seven
 * projections `self_attn.{q,k,v,o}_proj` and `mlp.{gate,up,down}_proj` with their in/out features, as
 * transformers' `modeling_llama.py` declares them, and a fingerprint, `spec-sha256:` + the sha256 of
 * the dims and the module list.
 */
export function buildModelSpec(dims: DecoderDims): ModelSpec {
  const width: Record<ProjectionWidth, number> = {
    hidden: dims.hiddenSize,
    query: dims.numHeads * dims.headDim,
    kv: dims.numKvHeads * dims.headDim,
    intermediate: dims.intermediateSize,
  };
  const modules = new Map<string, TargetModule>();
  for (let layer = 0; layer < dims.numLayers; layer++) {
    for (const p of PROJECTIONS) {
      const name = `model.layers.${layer}.${p.module}`;
      modules.set(name, { name, layer, inFeatures: width[p.in], outFeatures: width[p.out] });
    }
  }
  const canonical = JSON.stringify({
    dims: Object.fromEntries(Object.entries(dims).sort(([a], [b]) => (a < b ? -1 : 1))),
    modules: [...modules.values()].map((m) => [m.name, m.inFeatures, m.outFeatures]),
  });
  const fingerprint = `spec-sha256:${createHash("sha256").update(canonical).digest("hex")}`;
  return { dims, modules, fingerprint };
}
