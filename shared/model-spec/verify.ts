import { isTargeted, type LoraConfig, moduleLora } from "../peft/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { type FloatScan, type SafetensorsFile, scanFloats, type TensorView } from "../safetensors/index.ts";
import { type ModelSpec, parsePeftKey, peftKey } from "./module-map.ts";

/** A LoRA module that fits the base: both factors, its rank and its scaling. */
export interface AdapterModule {
  module: string;
  rank: number;
  scaling: number;
  a: TensorView;
  b: TensorView;
}

/** An adapter that fits its base: its modules (factors as zero-copy views) and its highest rank. */
export interface VerifiedAdapter {
  modules: AdapterModule[];
  maxRank: number;
}

/** Why an adapter does not fit a base. `tensor` names the offending PEFT key when there is one. */
export class AdapterMismatchError extends Error {
  override readonly name = "AdapterMismatchError";
  constructor(
    message: string,
    readonly tensor?: string,
  ) {
    super(tensor === undefined ? message : `tensor \`${tensor}\`: ${message}`);
  }
}

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16"]);

/**
 * The checks every key must pass whatever the base: it names a LoRA factor and holds finite floats.
 * A NaN or Inf factor (a diverged run) would serve empty text with null log-probabilities. Returns
 * the factor's module, which factor it is, and its largest magnitude (for `checkScaling`).
 */
function checkFactor(
  key: string,
  tensor: TensorView,
  scans: ScanOptions["scans"],
): Result<{ module: string; which: "A" | "B"; largestAbs: number }, AdapterMismatchError> {
  const parsed = parsePeftKey(key);
  if (parsed === null) {
    return err(
      new AdapterMismatchError(
        "is not a LoRA weight (expected base_model.model.<module>.lora_A|B.weight)",
        key,
      ),
    );
  }
  if (!FLOAT_DTYPES.has(tensor.dtype)) {
    return err(new AdapterMismatchError(`dtype ${tensor.dtype} is not a float type (F32, F16, BF16)`, key));
  }
  // One pass: finiteness and the largest magnitude together (a second pass over every B factor
  // cost a third of a 35 MB adapter's verification).
  const { nonFinite: bad, largestAbs } = scans?.get(key) ?? scanFloats(tensor);
  if (bad !== null) {
    return err(
      new AdapterMismatchError(`contains ${bad.value} (element ${bad.index}); factors must be finite`, key),
    );
  }
  return ok({ ...parsed, largestAbs });
}

/**
 * The engine folds the PEFT scaling into B as float32 (lora-feeds.ts), so finite factors can still
 * serve NaN: `lora_alpha: 1e39` makes the scaling itself overflow float32, and a finite scaling
 * times a large B element can too. Both are refused here, naming the config field the alpha came
 * from; `largestB` is the largest magnitude in the module's lora_B factor, already known to be
 * finite (`checkFactor`).
 */
function checkScaling(config: LoraConfig, module: string, largestB: number): AdapterMismatchError | null {
  const { rank, alpha, alphaField, scaling } = moduleLora(config, module);
  const rule = config.useRslora
    ? `${alphaField} / sqrt(r) = ${alpha} / sqrt(${rank})`
    : `${alphaField} / r = ${alpha} / ${rank}`;
  const scaling32 = Math.fround(scaling);
  if (!Number.isFinite(scaling32)) {
    return new AdapterMismatchError(
      `module \`${module}\`: LoRA scaling ${rule} = ${scaling} is not finite in float32 (${alphaField} is too large)`,
    );
  }
  if (!Number.isFinite(Math.fround(largestB * scaling32))) {
    return new AdapterMismatchError(
      `module \`${module}\`: lora_B scaled by ${rule} overflows float32 (largest |B| element ${largestB} × scaling ${scaling32}); lower ${alphaField}`,
    );
  }
  return null;
}

/** How the factors' floats were scanned already, for `verifyAdapter` and `verifyAdapterPairs`. */
export interface ScanOptions {
  /**
   * `scanFloats` of the file's tensors by name, taken by the caller over these very bytes (the
   * trainer's publisher, on a worker thread: shared/safetensors `scanFloatsConcurrent`); a tensor
   * without one is scanned here.
   */
  scans?: ReadonlyMap<string, FloatScan>;
}

/** Options of `verifyAdapter`. */
export interface VerifyOptions extends ScanOptions {
  /** Refuse ranks above this. @default 256 */
  maxRank?: number;
}

/**
 * Checks a decoded PEFT adapter against a base's module map: every key names a targetable module of
 * this base, each targeted module has both factors, and every shape is what the config's rank and the
 * base's dimensions demand.
 */
export function verifyAdapter(
  spec: ModelSpec,
  config: LoraConfig,
  file: SafetensorsFile,
  options: VerifyOptions = {},
): Result<VerifiedAdapter, AdapterMismatchError> {
  const maxRank = options.maxRank ?? 256;
  const found = new Map<string, { a?: TensorView; b?: TensorView; largestB?: number }>();
  for (const [key, tensor] of file.tensors) {
    const checked = checkFactor(key, tensor, options.scans);
    if (!checked.ok) return checked;
    const parsed = checked.value;
    const target = spec.modules.get(parsed.module);
    if (target === undefined) {
      return err(
        new AdapterMismatchError(
          `module \`${parsed.module}\` does not exist in the base (${spec.dims.modelType}, ${spec.dims.numLayers} layers)`,
          key,
        ),
      );
    }
    if (!isTargeted(config, parsed.module)) {
      return err(
        new AdapterMismatchError("its module is not selected by adapter_config.json target_modules", key),
      );
    }
    const { rank } = moduleLora(config, parsed.module);
    if (rank > maxRank)
      return err(new AdapterMismatchError(`rank ${rank} exceeds the limit of ${maxRank}`, key));
    const expected = parsed.which === "A" ? [rank, target.inFeatures] : [target.outFeatures, rank];
    if (tensor.shape.length !== 2 || tensor.shape[0] !== expected[0] || tensor.shape[1] !== expected[1]) {
      return err(
        new AdapterMismatchError(
          `shape [${tensor.shape.join(", ")}] does not match base [${expected.join(", ")}]`,
          key,
        ),
      );
    }
    const slot = found.get(parsed.module) ?? {};
    if (parsed.which === "A") slot.a = tensor;
    else {
      slot.b = tensor;
      slot.largestB = parsed.largestAbs;
    }
    found.set(parsed.module, slot);
  }

  const modules: AdapterModule[] = [];
  let highest = 0;
  for (const target of spec.modules.values()) {
    if (!isTargeted(config, target.name)) continue;
    const slot = found.get(target.name);
    if (slot?.a === undefined || slot.b === undefined) {
      const missing = peftKey(target.name, slot?.a === undefined ? "A" : "B");
      return err(
        new AdapterMismatchError("is targeted by adapter_config.json but missing from the weights", missing),
      );
    }
    const scaled = checkScaling(config, target.name, slot.largestB ?? 0);
    if (scaled !== null) return err(scaled);
    const { rank, scaling } = moduleLora(config, target.name);
    highest = Math.max(highest, rank);
    modules.push({ module: target.name, rank, scaling, a: slot.a, b: slot.b });
  }
  if (modules.length === 0) return err(new AdapterMismatchError("adapter targets no module of this base"));
  return ok({ modules, maxRank: highest });
}

/**
 * The checks that need no base: every key is a LoRA factor, factors come in A/B pairs, and their
 * ranks agree with adapter_config.json. Publishers without a configured base run this.
 */
export function verifyAdapterPairs(
  config: LoraConfig,
  file: SafetensorsFile,
  options: ScanOptions = {},
): Result<{ modules: number }, AdapterMismatchError> {
  const slots = new Map<string, { a?: TensorView; b?: TensorView; largestB?: number }>();
  for (const [key, tensor] of file.tensors) {
    const checked = checkFactor(key, tensor, options.scans);
    if (!checked.ok) return checked;
    const parsed = checked.value;
    const { rank } = moduleLora(config, parsed.module);
    const rankDim = parsed.which === "A" ? 0 : 1;
    if (tensor.shape.length !== 2 || tensor.shape[rankDim] !== rank) {
      return err(
        new AdapterMismatchError(
          `shape [${tensor.shape.join(", ")}] does not have rank ${rank} from adapter_config.json in dimension ${rankDim}`,
          key,
        ),
      );
    }
    const slot = slots.get(parsed.module) ?? {};
    if (parsed.which === "A") slot.a = tensor;
    else {
      slot.b = tensor;
      slot.largestB = parsed.largestAbs;
    }
    slots.set(parsed.module, slot);
  }
  for (const [module, slot] of slots) {
    if (slot.a === undefined || slot.b === undefined) {
      return err(
        new AdapterMismatchError("has no matching factor", peftKey(module, slot.a === undefined ? "B" : "A")),
      );
    }
    const scaled = checkScaling(config, module, slot.largestB ?? 0);
    if (scaled !== null) return err(scaled);
  }
  if (slots.size === 0) return err(new AdapterMismatchError("adapter has no LoRA tensors"));
  return ok({ modules: slots.size });
}
