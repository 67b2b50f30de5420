import { type LoraConfig, parseLoraConfig } from "../peft/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { decodeSafetensors } from "../safetensors/index.ts";
import type { ModelSpec } from "./module-map.ts";
import { type VerifiedAdapter, type VerifyOptions, verifyAdapter } from "./verify.ts";

/**
 * A PEFT adapter's two files, parsed and verified against a base. The reason names the file (and,
 * from verification, the tensor). The verified tensors are zero-copy views into `weights`.
 */
export function verifyAdapterFiles(
  spec: ModelSpec,
  configText: string,
  weights: Uint8Array,
  options: VerifyOptions = {},
): Result<{ verified: VerifiedAdapter; config: LoraConfig }, string> {
  const config = parseLoraConfig(configText);
  if (!config.ok) return err(config.error.message);
  const file = decodeSafetensors(weights);
  if (!file.ok) return err(`adapter_model.safetensors: ${file.error.message}`);
  const verified = verifyAdapter(spec, config.value, file.value, options);
  if (!verified.ok) return err(`adapter_model.safetensors: ${verified.error.message}`);
  return ok({ verified: verified.value, config: config.value });
}
