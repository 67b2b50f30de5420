/**
 * A PEFT reference fixture (../shared/fixtures/peft-reference/README.md): a HF base checkpoint, a
 * PEFT adapter, and tensors PyTorch computed from them.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type ModelSpec, type VerifiedAdapter, verifyAdapterFiles } from "@loracast/shared/model-spec";
import {
  decodeSafetensors,
  type SafetensorsFile,
  type TensorView,
  toFloat32,
} from "@loracast/shared/safetensors";

class FixtureError extends Error {
  override readonly name = "FixtureError";
}

export interface Reference {
  batch: number;
  seq: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  positionIds: BigInt64Array;
  logitsBase: Float32Array;
  logitsLora: Float32Array;
  /** [batch, seq - 1] */
  logprobsLora: Float32Array;
  greedyPrompt: number[];
  greedyTokens: number[];
  /** [batch, seq - 1]: the objective's weight per next-token log-probability */
  weights: Float32Array;
  /** `grad.<peft key>` tensors: d Σ weights·logprobs / d factor. */
  grads: Map<string, Float32Array>;
  file: SafetensorsFile;
}

function tensor(file: SafetensorsFile, name: string): TensorView {
  const t = file.tensors.get(name);
  if (t === undefined) throw new FixtureError(`reference.safetensors has no tensor ${name}`);
  return t;
}

function ints(t: TensorView): BigInt64Array {
  if (t.dtype !== "I64") throw new FixtureError(`${t.name} must be I64, is ${t.dtype}`);
  return t.array() as BigInt64Array;
}

export async function readReference(dir: string): Promise<Reference> {
  const decoded = decodeSafetensors(await readFile(join(dir, "reference.safetensors")));
  if (!decoded.ok) throw new FixtureError(`reference.safetensors: ${decoded.error.message}`);
  const file = decoded.value;
  const ids = tensor(file, "input_ids");
  const [batch, seq] = ids.shape as [number, number];
  const floats = (name: string) => {
    const t = tensor(file, name);
    return toFloat32(t.dtype, t.bytes);
  };
  const grads = new Map<string, Float32Array>();
  for (const [name, t] of file.tensors) {
    if (name.startsWith("grad.")) grads.set(name.slice(5), toFloat32(t.dtype, t.bytes));
  }
  return {
    batch,
    seq,
    inputIds: ints(ids),
    attentionMask: ints(tensor(file, "attention_mask")),
    positionIds: ints(tensor(file, "position_ids")),
    logitsBase: floats("logits_base"),
    logitsLora: floats("logits_lora"),
    logprobsLora: floats("logprobs_lora"),
    weights: floats("weights"),
    greedyPrompt: [...ints(tensor(file, "greedy_prompt"))].map(Number),
    greedyTokens: [...ints(tensor(file, "greedy_tokens"))].map(Number),
    grads,
    file,
  };
}

/** The fixture's adapter, verified against the built base's module map. */
export async function readAdapter(dir: string, spec: ModelSpec): Promise<VerifiedAdapter> {
  const checked = verifyAdapterFiles(
    spec,
    await readFile(join(dir, "adapter", "adapter_config.json"), "utf8"),
    await readFile(join(dir, "adapter", "adapter_model.safetensors")),
  );
  if (!checked.ok) throw new FixtureError(`adapter does not fit the base: ${checked.error}`);
  return checked.value.verified;
}
