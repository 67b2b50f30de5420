import { z } from "zod";
import { err, ok, type Result } from "../result/index.ts";

/** PEFT LoRA settings we act on, in our naming. `raw` keeps the file's own JSON for republishing. */
export interface LoraConfig {
  r: number;
  alpha: number;
  useRslora: boolean;
  /** A list (suffix match), a regex string (full match), or "all-linear". */
  targetModules: readonly string[] | string;
  excludeModules: readonly string[] | string | null;
  layersToTransform: readonly number[] | null;
  layersPattern: readonly string[] | null;
  rankPattern: Readonly<Record<string, number>>;
  alphaPattern: Readonly<Record<string, number>>;
  raw: Readonly<Record<string, unknown>>;
}

export class PeftConfigError extends Error {
  override readonly name = "PeftConfigError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`adapter_config.json: ${field}: ${message}`);
  }
}

const positiveInt = z.number().int().positive();
const stringOrList = z.union([z.string(), z.array(z.string())]);

// Unknown keys pass: PEFT itself drops keys it does not know, and newer PEFT versions add many.
const schema = z.looseObject({
  peft_type: z.literal("LORA"),
  r: positiveInt.default(8),
  lora_alpha: z.number().positive().default(8),
  use_rslora: z.boolean().default(false),
  target_modules: stringOrList.nullable().default(null),
  exclude_modules: stringOrList.nullable().default(null),
  layers_to_transform: z
    .union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())])
    .nullable()
    .default(null),
  layers_pattern: stringOrList.nullable().default(null),
  rank_pattern: z.record(z.string(), positiveInt).nullable().default({}),
  alpha_pattern: z.record(z.string(), z.number().positive()).nullable().default({}),
  fan_in_fan_out: z.boolean().default(false),
  bias: z.string().default("none"),
  lora_bias: z.boolean().default(false),
  use_dora: z.boolean().default(false),
  modules_to_save: z.array(z.string()).nullable().default(null),
});

/** Settings that change the math or the saved tensors in ways the engine does not implement yet. */
const UNSUPPORTED: { field: string; isSet: (v: unknown) => boolean; why: string }[] = [
  { field: "use_dora", isSet: (v) => v === true, why: "DoRA adapters are not supported yet" },
  { field: "lora_bias", isSet: (v) => v === true, why: "LoRA B biases are not supported yet" },
  {
    field: "modules_to_save",
    isSet: (v) => Array.isArray(v) && v.length > 0,
    why: "modules_to_save (full trainable modules) is not supported",
  },
  { field: "bias", isSet: (v) => v !== "none", why: 'only bias "none" is supported' },
  {
    field: "fan_in_fan_out",
    isSet: (v) => v === true,
    why: "fan_in_fan_out is for GPT-2 Conv1D layers, not Llama-family models",
  },
  { field: "use_qalora", isSet: (v) => v === true, why: "QA-LoRA is not supported" },
  { field: "layer_replication", isSet: (v) => v != null, why: "layer_replication is not supported" },
  { field: "trainable_token_indices", isSet: (v) => v != null, why: "trainable tokens are not supported" },
  {
    field: "target_parameters",
    isSet: (v) => Array.isArray(v) && v.length > 0,
    why: "target_parameters is not supported",
  },
];

/** Default targets PEFT uses for Llama, Mistral and Qwen2 when target_modules is null. */
const DEFAULT_TARGETS = ["q_proj", "v_proj"];

/** Parses `adapter_config.json` (as text or already-parsed JSON) with PEFT's semantics. */
export function parseLoraConfig(input: string | unknown): Result<LoraConfig, PeftConfigError> {
  let json: unknown = input;
  if (typeof input === "string") {
    try {
      json = JSON.parse(input);
    } catch (e) {
      return err(new PeftConfigError("(file)", `not valid JSON (${(e as Error).message})`));
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return err(new PeftConfigError("(file)", "must be a JSON object"));
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") || "(file)";
    return err(new PeftConfigError(field, issue?.message ?? "invalid"));
  }
  const raw = json as Record<string, unknown>;
  const effective: Record<string, unknown> = { ...raw, ...parsed.data };
  for (const u of UNSUPPORTED) {
    const value = effective[u.field];
    if (u.isSet(value)) return err(new PeftConfigError(u.field, `${u.why} (got ${JSON.stringify(value)})`));
  }
  const c = parsed.data;
  const asList = (v: string | string[] | null): string[] | null =>
    v === null ? null : typeof v === "string" ? [v] : v;
  return ok({
    r: c.r,
    alpha: c.lora_alpha,
    useRslora: c.use_rslora,
    targetModules: c.target_modules ?? DEFAULT_TARGETS,
    excludeModules: c.exclude_modules,
    layersToTransform:
      typeof c.layers_to_transform === "number" ? [c.layers_to_transform] : c.layers_to_transform,
    layersPattern: asList(c.layers_pattern),
    rankPattern: c.rank_pattern ?? {},
    alphaPattern: c.alpha_pattern ?? {},
    raw,
  });
}
