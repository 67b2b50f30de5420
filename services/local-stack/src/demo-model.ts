/**
 * The demo base model: a Llama with the demo config and seeded random weights (no real weights can
 * be downloaded here), written as a HF checkpoint and built into int4 artifacts once per data dir.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildArtifacts, MODEL_MANIFEST } from "@loracast/shared/model-builder";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { createRng } from "@loracast/shared/random";
import { encodeSafetensors, type TensorInput } from "@loracast/shared/safetensors";

export async function ensureDemoModel(dataDir: string, baseConfig: string, seed: number): Promise<string> {
  const modelDir = join(dataDir, "demo-model");
  if (existsSync(join(modelDir, MODEL_MANIFEST))) return modelDir;
  const checkpoint = join(dataDir, "demo-base");
  mkdirSync(checkpoint, { recursive: true });
  const configText = readFileSync(baseConfig, "utf8");
  const dims = parseDecoderDims(JSON.parse(configText));
  if (!dims.ok) throw dims.error;
  const { hiddenSize: d, vocabSize: v, numLayers } = dims.value;
  const spec = buildModelSpec(dims.value);
  const rng = createRng(seed);
  const tensors: Record<string, TensorInput> = {};
  const normal = (shape: number[], std: number): TensorInput => {
    const n = shape.reduce((a, b) => a * b, 1);
    // Box-Muller from the seeded RNG.
    const data = Float32Array.from(
      { length: n },
      () => std * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next()),
    );
    return { dtype: "F32", shape, data };
  };
  const ones = (n: number): TensorInput => ({ dtype: "F32", shape: [n], data: new Float32Array(n).fill(1) });
  tensors["model.embed_tokens.weight"] = normal([v, d], 0.02);
  tensors["model.norm.weight"] = ones(d);
  if (!dims.value.tieWordEmbeddings) tensors["lm_head.weight"] = normal([v, d], 0.02);
  for (let l = 0; l < numLayers; l++) {
    tensors[`model.layers.${l}.input_layernorm.weight`] = ones(d);
    tensors[`model.layers.${l}.post_attention_layernorm.weight`] = ones(d);
  }
  for (const m of spec.modules.values())
    tensors[`${m.name}.weight`] = normal([m.outFeatures, m.inFeatures], 0.02);
  writeFileSync(join(checkpoint, "model.safetensors"), encodeSafetensors(tensors, { format: "pt" }));
  writeFileSync(join(checkpoint, "config.json"), configText);
  const built = await buildArtifacts({
    checkpointDir: checkpoint,
    outDir: modelDir,
    quant: { kind: "nbits", bits: 4, blockSize: 32, emulate: false },
  });
  if (!built.ok) throw built.error;
  return modelDir;
}
