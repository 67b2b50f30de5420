import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { createRng } from "@loracast/shared/random";
import { encodeSafetensors, type TensorInput } from "@loracast/shared/safetensors";

/**
 * Writes a PEFT adapter directory (r=8 on q_proj and v_proj, seeded random weights) for the demo
 * base, so the quickstart has files to publish with curl.
 */
export function writeDemoAdapter(baseConfig: string, dir: string, seed: number): string {
  const dims = parseDecoderDims(JSON.parse(readFileSync(baseConfig, "utf8")));
  if (!dims.ok) throw dims.error;
  const rng = createRng(seed);
  const r = 8;
  const tensors: Record<string, TensorInput> = {};
  for (const m of buildModelSpec(dims.value).modules.values()) {
    if (!m.name.endsWith("q_proj") && !m.name.endsWith("v_proj")) continue;
    const a = new Float32Array(r * m.inFeatures).map(() => (rng.next() - 0.5) / Math.sqrt(m.inFeatures));
    const b = new Float32Array(m.outFeatures * r).map(() => (rng.next() - 0.5) * 0.01);
    tensors[`base_model.model.${m.name}.lora_A.weight`] = { dtype: "F32", shape: [r, m.inFeatures], data: a };
    tensors[`base_model.model.${m.name}.lora_B.weight`] = {
      dtype: "F32",
      shape: [m.outFeatures, r],
      data: b,
    };
  }
  mkdirSync(dir, { recursive: true });
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r,
    lora_alpha: 16,
    target_modules: ["q_proj", "v_proj"],
    bias: "none",
  };
  writeFileSync(join(dir, "adapter_config.json"), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(join(dir, "adapter_model.safetensors"), encodeSafetensors(tensors, { format: "pt" }));
  return dir;
}
