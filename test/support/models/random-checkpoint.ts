/**
 * A HF checkpoint with a real model's dimensions and seeded random weights (no real weights can be
 * downloaded here). Written tensor by tensor so that a 0.5B model never sits in memory twice.
 */
import { once } from "node:events";
import { createWriteStream, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARCHITECTURES } from "@loracast/shared/architectures";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { createRng } from "@loracast/shared/random";

/**
 * Writes `config.json` and `model.safetensors` (float32; every Linear, the embeddings and, unless
 * tied, `lm_head` uniform with the std of `initializer_range`; norms 1; q/k/v biases 0 where the architecture has them, as qwen2)
 * into `dir` unless both are already there (a killed run leaves only `model.safetensors.partial`, which
 * the next one rewrites). `config` is a HF `config.json` object
 * of a supported architecture; throws the `ModelSpecError` of one that is not.
 */
export async function writeRandomCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  seed: number,
): Promise<void> {
  // config.json is written last: its presence marks a finished checkpoint. The weights go to a
  // temporary name and are renamed when complete, so a run killed halfway leaves nothing that a
  // later run would take for a checkpoint.
  if (existsSync(join(dir, "model.safetensors")) && existsSync(join(dir, "config.json"))) return;
  mkdirSync(dir, { recursive: true });
  const dims = parseDecoderDims(config);
  if (!dims.ok) throw dims.error;
  const { hiddenSize: d, vocabSize: v, numLayers, numHeads, numKvHeads, headDim, modelType } = dims.value;
  const shapes: [string, number[], "normal" | "ones" | "zeros"][] = [
    ["model.embed_tokens.weight", [v, d], "normal"],
  ];
  for (const m of buildModelSpec(dims.value).modules.values())
    shapes.push([`${m.name}.weight`, [m.outFeatures, m.inFeatures], "normal"]);
  for (let l = 0; l < numLayers; l++) {
    shapes.push([`model.layers.${l}.input_layernorm.weight`, [d], "ones"]);
    shapes.push([`model.layers.${l}.post_attention_layernorm.weight`, [d], "ones"]);
    if (ARCHITECTURES[modelType].qkvBias) {
      shapes.push([`model.layers.${l}.self_attn.q_proj.bias`, [numHeads * headDim], "zeros"]);
      shapes.push([`model.layers.${l}.self_attn.k_proj.bias`, [numKvHeads * headDim], "zeros"]);
      shapes.push([`model.layers.${l}.self_attn.v_proj.bias`, [numKvHeads * headDim], "zeros"]);
    }
  }
  shapes.push(["model.norm.weight", [d], "ones"]);
  if (!dims.value.tieWordEmbeddings) shapes.push(["lm_head.weight", [v, d], "normal"]);

  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const partial = join(dir, "model.safetensors.partial");
  const out = createWriteStream(partial);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  out.write(prefix);
  out.write(json);
  const rng = createRng(seed);
  // Uniform with the std of N(0, initializer_range), as HF initialises: cheap and enough here.
  const std = typeof config.initializer_range === "number" ? config.initializer_range : 0.02;
  const width = 2 * Math.sqrt(3) * std;
  for (const [, shape, init] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (init === "normal") for (let i = 0; i < n; i++) data[i] = (rng.next() - 0.5) * width;
    else if (init === "ones") data.fill(1);
    if (!out.write(Buffer.from(data.buffer))) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  renameSync(partial, join(dir, "model.safetensors"));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
}
