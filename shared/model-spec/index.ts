/**
 * What a base model accepts: its decoder dimensions read from a HF `config.json`, the map of every
 * module a LoRA may target with its shapes, and adapter verification against that map.
 */
import { readFile } from "node:fs/promises";
import { err, ok, type Result } from "../result/index.ts";
import { ModelConfigError, parseDecoderDims } from "./hf-config.ts";
import { buildModelSpec, type ModelSpec } from "./module-map.ts";

export { verifyAdapterFiles } from "./adapter-files.ts";
export { type DecoderDims, ModelConfigError, parseDecoderDims } from "./hf-config.ts";
export { buildModelSpec, type ModelSpec, peftKey } from "./module-map.ts";
export { PACKED_MODULES, type PackedModule } from "./packed-modules.ts";
export {
  type AdapterModule,
  type VerifiedAdapter,
  verifyAdapter,
  verifyAdapterPairs,
} from "./verify.ts";

/** Loads a model spec from a HF `config.json` on disk. */
export async function loadModelSpec(configPath: string): Promise<Result<ModelSpec, ModelConfigError>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(configPath, "utf8"));
  } catch (e) {
    return err(new ModelConfigError("(file)", `cannot read ${configPath}: ${(e as Error).message}`));
  }
  const dims = parseDecoderDims(json);
  return dims.ok ? ok(buildModelSpec(dims.value)) : dims;
}
