/**
 * The run config document `POST /v1/runs` takes, parsed once here. Defaults follow TRL's configs
 * (`GRPOConfig`, `OnlineDPOConfig`, `RLOOConfig`) where the field has a TRL counterpart.
 */
import { isAbsolute, resolve } from "node:path";
import { runName } from "@loracast/shared/manifest";
import { z } from "zod";
import { algorithmConfigSchema } from "./algorithms/index.ts";
import { compileRewardPattern } from "./reward-pattern.ts";

const positiveInt = z.number().int().positive();

const MAX_LOGGING_DIR_LENGTH = 255;
/** Relative folder names only: no leading '/', no '.' or '..' segment, at most 8 levels. */
const LOGGING_DIR = /^(?!\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._-]+){0,7}$/;
const nonNegative = z.number().nonnegative();

const sampling = z.strictObject({
  temperature: z.number().positive().default(1),
  topK: z.number().int().nonnegative().default(0),
  topP: z.number().gt(0).lte(1).default(1),
  maxTokens: positiveInt.max(4096).default(64),
});

const reward = z.discriminatedUnion("type", [
  /** 1 when the completion (trimmed) equals the sample's `answer`. */
  z.strictObject({ type: z.literal("exact_match"), weight: z.number().default(1) }),
  /** `match`: 1 when the pattern matches anywhere; `fraction`: matched characters / characters. */
  z.strictObject({
    type: z.literal("regex"),
    /**
     * An RE2 regular expression (linear-time matching: no backreferences or lookaround), at most
     * MAX_REWARD_PATTERN_LENGTH characters, checked when the run is created.
     */
    pattern: z
      .string()
      .min(1)
      .check((ctx) => {
        const compiled = compileRewardPattern(ctx.value);
        if (!compiled.ok)
          ctx.issues.push({ code: "custom", input: ctx.value, message: compiled.error.message });
      }),
    mode: z.enum(["match", "fraction"]).default("match"),
    weight: z.number().default(1),
  }),
  /** 1 when the last number in the completion equals the sample's numeric `answer`. */
  z.strictObject({
    type: z.literal("numeric_answer"),
    tolerance: nonNegative.default(1e-6),
    weight: z.number().default(1),
  }),
  /** −max(0, tokens − target) / target: a penalty for running past `target` tokens. */
  z.strictObject({ type: z.literal("length_penalty"), target: positiveInt, weight: z.number().default(1) }),
  /** 1 when the completion parses as JSON. */
  z.strictObject({ type: z.literal("json_valid"), weight: z.number().default(1) }),
  /** POST {prompt, completion, answer} → {reward}; bounded time and retries. */
  z.strictObject({
    type: z.literal("http"),
    url: z.url(),
    timeoutMs: positiveInt.default(5000),
    retries: z.number().int().min(0).max(10).default(2),
    /** After the retries: fail the step, or skip the sample (its reward NaN, counted). */
    onError: z.enum(["fail", "skip"]).default("fail"),
    weight: z.number().default(1),
  }),
]);
/** One entry of a run config's `rewards`: a built-in reward function or an HTTP endpoint. */
export type RewardSpec = z.infer<typeof reward>;

/**
 * The `POST /v1/runs` body. Every field but `run`, `algorithm`, `dataset` and `steps` has a default;
 * unknown fields are refused. Cross-field checks (rewards, LoRA targets, dataset lines, URLs) are
 * run-plan.ts's.
 */
export const runConfigSchema = z.strictObject({
  /** Run id: the adapter's name on the generators. */
  run: runName,
  seed: z.number().int().nonnegative().default(0),
  /** The training algorithm and its settings, one of the registry's (algorithms/registry.ts). */
  algorithm: algorithmConfigSchema,
  dataset: z.strictObject({
    /**
     * JSONL file on the trainer's disk, a relative path from the trainer's working directory: one
     * `{"prompt": ..., "answer"?: ..., "completion"?: ...}` per line. Made absolute when the run is
     * created (`withAbsoluteDatasetPath`); the run keeps and reports that path.
     */
    path: z.string().min(1),
  }),
  rewards: z.array(reward).default([]),
  /** Omitted: rank 8, alpha 16, every linear projection ("all-linear"), no rsLoRA. */
  lora: z
    .strictObject({
      r: positiveInt.max(256).default(8),
      alpha: z.number().positive().default(16),
      // PEFT's target_modules: module names (each matches a module or its last path segments),
      // "all-linear", or one Python regex that must match a whole module path (re.fullmatch).
      targetModules: z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]).default("all-linear"),
      rslora: z.boolean().default(false),
    })
    .prefault({}),
  optimizer: z
    .strictObject({
      lr: z.number().positive().default(1e-4),
      weightDecay: nonNegative.default(0),
      beta1: z.number().min(0).lt(1).default(0.9),
      beta2: z.number().min(0).lt(1).default(0.999),
      eps: z.number().positive().default(1e-8),
      maxGradNorm: z.number().positive().default(1),
      schedule: z.enum(["constant", "constant_with_warmup", "linear", "cosine"]).default("constant"),
      warmupSteps: z.number().int().nonnegative().default(0),
    })
    .prefault({}),
  steps: positiveInt.max(1_000_000),
  /** Prompts per step (each sampled as often as the algorithm's samplesPerPrompt says). */
  promptsPerStep: positiveInt.max(4096).default(4),
  /**
   * Sequences per forward/backward pass; gradients accumulate over a step's micro-batches. Null
   * (the default) chooses it each step from the training graph's activation memory for the step's
   * longest sequence against TRAINER_MEMORY_BUDGET_MB (shared/training/memory.ts).
   */
  microBatch: positiveInt.max(4096).nullable().default(null),
  sampling: sampling.prefault({}),
  /** Generators to sample from, by base URL; null samples from the trainer's in-process engine. */
  generators: z
    .strictObject({
      urls: z.array(z.url()).min(1),
      timeoutMs: positiveInt.default(60_000),
      retries: z.number().int().min(0).max(10).default(3),
    })
    .nullable()
    .default(null),
  publishEvery: positiveInt.default(1),
  checkpointEvery: positiveInt.default(5),
  /** Consecutive non-finite steps after which the run fails. */
  maxNonFiniteSteps: positiveInt.default(3),
  /**
   * Where the run's metrics go besides its event stream, as TRL's and transformers' `report_to`
   * names them: `"tensorboard"` writes TensorBoard event files (reporting/tensorboard.ts).
   */
  reportTo: z
    .array(z.enum(["tensorboard"]))
    .max(1)
    .default([]),
  /**
   * The TensorBoard log folder (transformers' `logging_dir`), relative to the trainer's
   * TRAINER_TENSORBOARD_DIR, which the operator chooses: a request never picks a place on disk.
   * Null: the run's name. Only with `reportTo: ["tensorboard"]`.
   */
  loggingDir: z
    .string()
    .max(MAX_LOGGING_DIR_LENGTH)
    .regex(
      LOGGING_DIR,
      "a folder under TRAINER_TENSORBOARD_DIR: 1-8 names of letters, digits, '.', '_' and '-' joined by '/', none of them '.' or '..'",
    )
    .nullable()
    .default(null),
});

/** A parsed run config, defaults filled in. */
export type RunConfig = z.infer<typeof runConfigSchema>;

/**
 * `config` with its `dataset.path` absolute: a relative one resolved against `cwd` (the trainer's
 * working directory when the run was accepted), an absolute one as given. The run's record and
 * `GET /v1/runs/:id` keep the result, so a trainer restarted from another directory resumes the run
 * on the same file.
 */
export function withAbsoluteDatasetPath(config: RunConfig, cwd: string): RunConfig {
  const { path } = config.dataset;
  return isAbsolute(path) ? config : { ...config, dataset: { ...config.dataset, path: resolve(cwd, path) } };
}

/**
 * The first problem with a config, naming the deepest field: `algorithm.epsilon: expected number`,
 * `lora.targetModules.1: Invalid input: expected string, received number`.
 */
export function describeConfigError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return "invalid run config";
  const { path, message } = deepest(issue, []);
  return `${path.length > 0 ? path.join(".") : "(document)"}: ${message}`;
}

/**
 * A union's own issue only says "Invalid input"; its branches say why (zod v4 keeps each branch's
 * issues, with paths relative to the union). The branch that got furthest into the value is the
 * one the user meant, so its first issue is reported at its full path. When no branch got past the
 * union's own value (a number where a list or a string goes), the branches' expectations are joined.
 */
function deepest(issue: z.core.$ZodIssue, prefix: PropertyKey[]): { path: PropertyKey[]; message: string } {
  const path = [...prefix, ...issue.path];
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return { path, message: issue.message };
  const branches = issue.errors.flatMap((b) => (b[0] === undefined ? [] : [deepest(b[0], path)]));
  const best = branches.reduce<{ path: PropertyKey[]; message: string } | undefined>(
    (a, b) => (a === undefined || b.path.length > a.path.length ? b : a),
    undefined,
  );
  if (best === undefined) return { path, message: issue.message };
  if (best.path.length > path.length) return best;
  return { path, message: [...new Set(branches.map((b) => b.message))].join("; or ") };
}
