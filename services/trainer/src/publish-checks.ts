/**
 * What a publish checks and waits for before its upload: the PEFT files' validation (the float
 * scan off the publisher's thread where the weights live in shared memory) and the weights' sha256.
 */
import { WEIGHTS_FILE } from "@loracast/shared/manifest";
import { type ModelSpec, verifyAdapter, verifyAdapterPairs } from "@loracast/shared/model-spec";
import { parseLoraConfig } from "@loracast/shared/peft";
import { err, ok, type Result } from "@loracast/shared/result";
import { decodeSafetensors, scanFloatsConcurrent } from "@loracast/shared/safetensors";
import { sha256Hex } from "@loracast/shared/store";
import { TrainerError } from "./errors.ts";

/**
 * Checks a PEFT adapter's two files (the config's PEFT semantics, every tensor against `spec`'s
 * module map, or pairwise without a base); `invalid_adapter` naming what fails otherwise. The
 * floats are scanned on a worker thread where the weights live in shared memory
 * (`scanFloatsConcurrent`); the caller must not change them until this settles.
 */
export async function validateAdapter(
  spec: ModelSpec | null,
  configBytes: Uint8Array,
  weights: Uint8Array,
): Promise<Result<null, TrainerError>> {
  const config = parseLoraConfig(new TextDecoder().decode(configBytes));
  if (!config.ok) return err(new TrainerError("invalid_adapter", config.error.message));
  const file = decodeSafetensors(weights);
  if (!file.ok) return err(new TrainerError("invalid_adapter", `${WEIGHTS_FILE}: ${file.error.message}`));
  const scans = await scanFloatsConcurrent(file.value);
  const fit =
    spec === null
      ? verifyAdapterPairs(config.value, file.value, { scans })
      : verifyAdapter(spec, config.value, file.value, { scans });
  if (!fit.ok) return err(new TrainerError("invalid_adapter", `${WEIGHTS_FILE}: ${fit.error.message}`));
  return ok(null);
}

/**
 * The weights' sha256 (lowercase hex): the caller's `sha256`, awaited where it is still computing
 * (the time it still takes recorded in `phasesMs.hashWait`, milliseconds), or computed here.
 */
export async function weightsHash(
  weights: Uint8Array,
  sha256: string | Promise<string> | undefined,
  phasesMs: Record<string, number>,
): Promise<string> {
  if (typeof sha256 === "string") return sha256;
  if (sha256 === undefined) return sha256Hex(weights);
  const start = performance.now();
  const known = await sha256;
  phasesMs.hashWait = Math.round(performance.now() - start);
  return known;
}
