import type { RE2JS } from "re2js";
import { z } from "zod";
import { err, ok, type Result } from "../result/index.ts";
import { compilePythonRegex } from "./python-regex.ts";

/**
 * Which modules a PEFT setting selects: a list of names (a module matches one exactly or ends with
 * `.<name>`), or one Python regex (`re.fullmatch` on the module path), compiled at parse time.
 */
export type ModuleSelector =
  | { kind: "names"; names: readonly string[] }
  | { kind: "regex"; source: string; regex: RE2JS };

/** One `rank_pattern` / `alpha_pattern` entry: PEFT's `re.match(rf"(.*\.)?({key})$", name)`. */
export interface PatternEntry {
  key: string;
  regex: RE2JS;
  value: number;
}

/** PEFT LoRA settings we act on, in our naming. `raw` keeps the file's own JSON for republishing. */
export interface LoraConfig {
  r: number;
  alpha: number;
  useRslora: boolean;
  targetModules: ModuleSelector | "all-linear";
  excludeModules: ModuleSelector | null;
  layersToTransform: readonly number[] | null;
  /** PEFT's `re.match(rf".*?\.{pattern}\.(\d+)\.", name)` per `layers_pattern` entry; the last group is the index. */
  layersPattern: readonly RE2JS[] | null;
  rankPattern: readonly PatternEntry[];
  alphaPattern: readonly PatternEntry[];
  raw: Readonly<Record<string, unknown>>;
}

/** A field of adapter_config.json PEFT would not load as we serve it; `reason` is the message without the field. */
export class PeftConfigError extends Error {
  override readonly name = "PeftConfigError";
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`adapter_config.json: ${field}: ${reason}`);
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
  init_lora_weights: z.union([z.boolean(), z.string()]).default(true),
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
    field: "alora_invocation_tokens",
    isSet: (v) => v != null,
    why: "Activated LoRA (applied only after the invocation tokens) is not supported",
  },
  {
    field: "kasa_config",
    isSet: (v) => v != null,
    why: "KaSA truncates the base weights' singular values, which a generator does not serve",
  },
  {
    field: "target_parameters",
    isSet: (v) => Array.isArray(v) && v.length > 0,
    why: "target_parameters is not supported",
  },
];

/**
 * `init_lora_weights` values whose adapters PEFT serves on a rewritten base: PiSSA, CorDA, OLoRA and
 * LoRA-GA subtract scaling·B₀A₀ from each targeted weight when the adapter is created, and LoftQ
 * replaces it with its own quantization (peft/tuners/lora/layer.py, `update_layer`). The saved factors
 * are only right on that residual base, which no generator holds. PEFT's `save_pretrained(...,
 * path_initial_model_for_weight_conversion=<initial adapter>)` turns them into plain LoRA; converting
 * here would need that initial adapter, which an upload does not carry.
 */
const REWRITES_BASE = [/^pissa(_niter_\d+)?$/, /^corda$/, /^olora$/, /^loftq$/, /^lora_ga$/];
/** Values that only choose the initial factors; the trained adapter is plain LoRA on the base. */
const FACTORS_ONLY = new Set(["gaussian", "eva", "orthogonal", "mica"]);

function checkInit(value: boolean | string): PeftConfigError | null {
  if (typeof value === "boolean") return null;
  const v = value.toLowerCase();
  if (FACTORS_ONLY.has(v)) return null;
  if (REWRITES_BASE.some((re) => re.test(v))) {
    return new PeftConfigError(
      "init_lora_weights",
      `${JSON.stringify(value)} adapters are trained against a base PEFT rewrites when it loads them, which a generator does not serve; convert the adapter to plain LoRA first (PEFT save_pretrained with path_initial_model_for_weight_conversion)`,
    );
  }
  return new PeftConfigError("init_lora_weights", `unknown PEFT initialisation ${JSON.stringify(value)}`);
}

/** A selector from `target_modules` / `exclude_modules`: a string is a regex, a list is names. */
function selector(field: string, v: string | string[]): Result<ModuleSelector, PeftConfigError> {
  if (typeof v !== "string") return ok({ kind: "names", names: v });
  const regex = compilePythonRegex(v);
  return regex.ok
    ? ok({ kind: "regex", source: v, regex: regex.value })
    : err(new PeftConfigError(field, regex.error.message));
}

function patternEntries(
  field: string,
  pattern: Readonly<Record<string, number>> | null,
): Result<PatternEntry[], PeftConfigError> {
  const out: PatternEntry[] = [];
  for (const [key, value] of Object.entries(pattern ?? {})) {
    const regex = compilePythonRegex(key, (k) => `(.*\\.)?(${k})`);
    if (!regex.ok) return err(new PeftConfigError(`${field}.${key}`, regex.error.message));
    out.push({ key, regex: regex.value, value });
  }
  return ok(out);
}

function layerPatterns(v: string | string[] | null): Result<RE2JS[] | null, PeftConfigError> {
  // PEFT: an empty layers_pattern ("" or []) means the default, any `<name>.<index>.` segment.
  if (v === null || v.length === 0) return ok(null);
  const out: RE2JS[] = [];
  for (const p of typeof v === "string" ? [v] : v) {
    // PEFT splices the pattern in ungrouped; wrapping it would change what an alternation means.
    const regex = compilePythonRegex(p, (q) => `.*?\\.${q}\\.(\\d+)\\.`);
    if (!regex.ok) return err(new PeftConfigError("layers_pattern", regex.error.message));
    out.push(regex.value);
  }
  return ok(out);
}

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
  const init = checkInit(c.init_lora_weights);
  if (init !== null) return err(init);
  const target =
    c.target_modules === "all-linear"
      ? ok("all-linear" as const)
      : selector("target_modules", c.target_modules ?? DEFAULT_TARGETS);
  if (!target.ok) return target;
  const exclude = c.exclude_modules === null ? ok(null) : selector("exclude_modules", c.exclude_modules);
  if (!exclude.ok) return exclude;
  const layers = layerPatterns(c.layers_pattern);
  if (!layers.ok) return layers;
  const ranks = patternEntries("rank_pattern", c.rank_pattern);
  if (!ranks.ok) return ranks;
  const alphas = patternEntries("alpha_pattern", c.alpha_pattern);
  if (!alphas.ok) return alphas;
  return ok({
    r: c.r,
    alpha: c.lora_alpha,
    useRslora: c.use_rslora,
    targetModules: target.value,
    excludeModules: exclude.value,
    // PEFT ignores an empty layers_to_transform list.
    layersToTransform:
      typeof c.layers_to_transform === "number"
        ? [c.layers_to_transform]
        : c.layers_to_transform?.length
          ? c.layers_to_transform
          : null,
    layersPattern: layers.value,
    rankPattern: ranks.value,
    alphaPattern: alphas.value,
    raw,
  });
}
