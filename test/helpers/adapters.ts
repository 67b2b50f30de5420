/** Adapters and base configs made on the fly for tests and benchmarks, from a seeded RNG. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fixture } from "@loracast/dev-support/fixtures";
import { PROJECTIONS } from "@loracast/shared/architectures";
import { buildModelSpec, type DecoderDims, parseDecoderDims } from "@loracast/shared/model-spec";
import { createRng } from "@loracast/shared/random";
import { encodeSafetensors, type TensorInput } from "@loracast/shared/safetensors";

export interface AdapterFiles {
  config: Uint8Array;
  weights: Uint8Array;
}

/** A handbook fixture's PEFT adapter files, as read from disk. */
export function fixtureAdapter(name: "llama-tiny" | "qwen2-tiny"): AdapterFiles {
  const dir = join(fixture(name), "adapter");
  return {
    config: readFileSync(join(dir, "adapter_config.json")),
    weights: readFileSync(join(dir, "adapter_model.safetensors")),
  };
}

/** A random LoRA for every module of `targets` in a base, with rank `r` and entries in ±scale/2. */
export function randomAdapter(
  baseConfigPath: string,
  seed: number,
  r: number,
  targets: string[],
  scale = 1,
): AdapterFiles {
  const dims = parseDecoderDims(JSON.parse(readFileSync(baseConfigPath, "utf8")));
  if (!dims.ok) throw dims.error;
  const spec = buildModelSpec(dims.value);
  const rng = createRng(seed);
  const tensors: Record<string, TensorInput> = {};
  for (const m of spec.modules.values()) {
    if (!targets.some((t) => m.name.endsWith(`.${t}`))) continue;
    for (const [which, shape] of [
      ["A", [r, m.inFeatures]],
      ["B", [m.outFeatures, r]],
    ] as const) {
      const data = new Float32Array(shape[0] * shape[1]);
      for (let i = 0; i < data.length; i++) data[i] = (rng.next() - 0.5) * scale;
      tensors[`base_model.model.${m.name}.lora_${which}.weight`] = { dtype: "F32", shape, data };
    }
  }
  const config = {
    peft_type: "LORA",
    r,
    lora_alpha: 2 * r,
    target_modules: targets,
    task_type: "CAUSAL_LM",
    bias: "none",
  };
  return {
    config: new TextEncoder().encode(JSON.stringify(config)),
    weights: encodeSafetensors(tensors, { format: "pt" }),
  };
}

/** Llama-2-7B dimensions: a LoRA over all 32 layers at rank 1 on every projection is about 10 MB. */
export const LLAMA_7B_DIMS = {
  hiddenSize: 4096,
  intermediateSize: 11008,
  numLayers: 32,
  numHeads: 32,
  numKvHeads: 32,
  headDim: 128,
  vocabSize: 32000,
};

/** Writes a HF config.json with the given dimensions, for bases larger than the fixtures. */
export function writeBaseConfig(
  dir: string,
  dims: Omit<DecoderDims, "modelType" | "tieWordEmbeddings">,
): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "config.json");
  writeFileSync(
    path,
    JSON.stringify({
      model_type: "llama",
      hidden_size: dims.hiddenSize,
      intermediate_size: dims.intermediateSize,
      num_hidden_layers: dims.numLayers,
      num_attention_heads: dims.numHeads,
      num_key_value_heads: dims.numKvHeads,
      head_dim: dims.headDim,
      vocab_size: dims.vocabSize,
      tie_word_embeddings: false,
    }),
  );
  return path;
}

/**
 * A random adapter on the base at `baseConfigPath` whose weights come closest to `mb` MiB: rank 1 on
 * `q_proj` up to 2 MiB, else every projection at a rank of about `mb / 10` (on a 7B base, rank 1 on
 * all seven projections is about 10 MB).
 */
export function adapterOfSize(baseConfigPath: string, mb: number, seed: number): AdapterFiles {
  if (mb <= 2) return randomAdapter(baseConfigPath, seed, 1, ["q_proj"]);
  const all = PROJECTIONS.map((p) => p.name);
  return randomAdapter(baseConfigPath, seed, Math.max(1, Math.round(mb / 10)), all);
}

/**
 * `weights` made distinct for publish `i` by changing its last four bytes (the last value of the
 * last tensor, to a small finite float32), so every publish of one adapter uploads a new blob.
 */
export function distinctWeights(weights: Uint8Array, i: number): Uint8Array {
  const out = new Uint8Array(weights);
  new DataView(out.buffer).setUint32(out.length - 4, 0x3c000000 + i, true);
  return out;
}
