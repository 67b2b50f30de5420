import { envBool, commaList as list, logLevel, sseHeartbeatSeconds } from "@loracast/shared/platform";
import { baseGraphSchema, executionProviderSchema, ortBackendSchema } from "@loracast/shared/runtime";
import { publicKeyList } from "@loracast/shared/signing";
import { s3EnvSchema } from "@loracast/shared/store";
import { isValidSecret } from "@loracast/shared/webhooks";
import { z } from "zod";

/** An unset or empty variable both mean "not given". */
const optionalPath = z
  .string()
  .optional()
  .transform((v) => (v === "" ? undefined : v));

const envSchema = s3EnvSchema.extend({
  /**
   * Lowest level logged: debug, info, warn or error. Above info the `ready` line (an info line) is
   * dropped too: wait on `/readyz` instead.
   */
  LOG_LEVEL: logLevel,
  /** Interface to listen on. */
  GENERATOR_HOST: z.string().default("127.0.0.1"),
  /** Port; 0 picks a free one, printed on the ready line. */
  GENERATOR_PORT: z.coerce.number().int().min(0).max(65535).default(8800),
  /** Instance name, shown in logs. */
  GENERATOR_NAME: z.string().default("generator-0"),
  /**
   * Built model artifacts (`npm run build-model`): the base is loaded once from here and served.
   * Adapters are verified against its module map and fingerprint.
   */
  GENERATOR_MODEL_DIR: optionalPath,
  /**
   * Without GENERATOR_MODEL_DIR: a HF config.json whose module map adapters are verified against.
   * The generator then runs the adapter lifecycle only and answers completions with 503.
   */
  GENERATOR_BASE_CONFIG: optionalPath,
  /** Execution provider for the model session. */
  GENERATOR_EXECUTION_PROVIDER: executionProviderSchema.default("cpu"),
  /**
   * The ORT binding of the model session: `auto` (loracast's ort-native addon on cuda where it
   * loads, onnxruntime-node otherwise; the addon on any provider for a model built with
   * `--lora-op shrink-expand`, failing at start without it), `ort-native` (fail at start where it
   * cannot load) or `onnxruntime-node` (the stock binding, e.g. to compare; refused for a
   * shrink-expand model).
   */
  GENERATOR_ORT_BACKEND: ortBackendSchema.default("auto"),
  /**
   * Whether requests for the base model (no adapter) run on the decoder graph without LoRA inputs:
   * `auto` (on for cuda and webgpu, off on cpu), `on` (fail at start where the model has none:
   * rebuild it) or `off` (the LoRA graph with rank-0 factors). On costs a second ORT session over
   * the same weights.
   */
  GENERATOR_BASE_GRAPH: baseGraphSchema.default("auto"),
  /** ORT intra-op threads; 0 lets ORT choose. */
  GENERATOR_THREADS: z.coerce.number().int().min(0).default(0),
  /** Most sequences decoded together per adapter version. */
  GENERATOR_MAX_BATCH: z.coerce.number().int().positive().default(16),
  /** Seeds requests that bring no `seed`, so that a whole server run replays. */
  GENERATOR_SEED: z.coerce.number().int().default(0),
  /** The base model's name in /v1/models and in `model` fields. */
  GENERATOR_MODEL_NAME: z.string().default("base"),
  /** Comma-separated runs to follow; empty follows every run in the store. */
  GENERATOR_RUNS: list,
  /** Comma-separated Standard Webhooks secrets accepted (several during rotation). */
  WEBHOOK_SECRETS: list.refine((s) => s.length > 0 && s.every(isValidSecret), "one or more whsec_ secrets"),
  /**
   * Comma-separated Ed25519 public keys (base64 of the raw 32 bytes; the trainer logs its own as
   * `publicKey`) whose signatures make a manifest or rollback record trusted; several during a key
   * rotation. Required: unset, the generator refuses to start unless GENERATOR_ALLOW_UNSIGNED is true.
   */
  MANIFEST_PUBLIC_KEYS: publicKeyList,
  /**
   * Start without MANIFEST_PUBLIC_KEYS: metadata is then read unsigned, and anyone who can write to
   * the bucket chooses what this generator serves (it warns at start). An explicit opt-out only.
   */
  GENERATOR_ALLOW_UNSIGNED: envBool.default(false),
  /** Allowed webhook timestamp skew, in seconds. */
  WEBHOOK_TOLERANCE_S: z.coerce.number().int().positive().default(300),
  /** How often the store is reconciled, so missed webhooks converge. */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().positive().default(3000),
  /** Most adapter versions held in memory (active and pinned ones are always held on top). */
  CACHE_MAX_VERSIONS: z.coerce.number().int().min(1).default(8),
  /** Most adapter weight bytes held in memory, in MiB. */
  CACHE_MAX_MB: z.coerce.number().positive().default(2048),
  /**
   * Serve a version that a rollback revoked when a request (or `load_lora_adapter`) names it exactly
   * as `<run>@<version>`. Off: such requests get 410 `adapter_revoked` naming the rollback. Either
   * way a revoked version is never activated, never listed in /v1/models, and `<run>` means the
   * rollback's target. For replaying or comparing against a withdrawn version on purpose.
   */
  GENERATOR_SERVE_REVOKED: envBool.default(false),
  /**
   * Bearer token of the LoRA admin API (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`). Unset:
   * that API is enabled only when GENERATOR_HOST is a loopback address, and answers 403 otherwise.
   */
  GENERATOR_ADMIN_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v))
    .pipe(z.string().min(16, "at least 16 characters").max(512, "at most 512 characters").optional()),
  /**
   * Comma-separated directories whose PEFT adapter directories `load_lora_adapter` may read as
   * `lora_path` (real paths: a symlink out of them is refused). Empty: local directories are refused.
   */
  GENERATOR_LORA_DIRS: list,
  /** Most names loaded through `load_lora_adapter` at once; each pins its version in memory. */
  GENERATOR_MAX_LORA_ALIASES: z.coerce.number().int().min(1).max(4096).default(64),
  /**
   * Largest body of a completions or chat request, in bytes; longer ones are refused with 413 while
   * they stream in, before any parsing. Webhook and admin bodies have fixed, smaller bounds.
   */
  GENERATOR_MAX_REQUEST_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
  /**
   * Most float32 logits, in MiB, that one request's prompt logprobs (vLLM `prompt_logprobs`, or
   * `echo` with `logprobs`) may hold: scoring a prompt keeps `[sequences, prompt tokens, vocab]` of
   * them at once. A request past it is refused with 400 naming the parameter.
   */
  GENERATOR_PROMPT_LOGPROBS_MAX_MB: z.coerce.number().positive().default(256),
  /**
   * Seconds between the SSE comments (`: ping`) a streamed completion sends while it produces
   * nothing (queued for a batch slot, a long prefill), so that idle-body timeouts on the way do not
   * cut it; 0.1 to 120. OpenAI's and vLLM's clients ignore SSE comments.
   */
  GENERATOR_SSE_HEARTBEAT_S: sseHeartbeatSeconds,
  /** Highest LoRA rank accepted. */
  MAX_LORA_RANK: z.coerce.number().int().positive().default(256),
  /**
   * Largest |Δ| allowed between a manifest's probe logprobs and this generator's, per token. Same
   * artifacts on the same EP agree to ~1e-5; the slack is for other EPs and thread counts.
   */
  PROBE_TOLERANCE: z.coerce.number().positive().default(0.01),
});

/**
 * The generator's environment: the store's `S3_*` settings plus its own, parsed once at start by
 * `main.ts` (a failure names the variable and exits 2). One of `GENERATOR_MODEL_DIR` (serve a model)
 * or `GENERATOR_BASE_CONFIG` (verify adapters only) is required.
 */
export const generatorEnvSchema = envSchema.refine(
  (e) => e.GENERATOR_MODEL_DIR !== undefined || e.GENERATOR_BASE_CONFIG !== undefined,
  {
    message: "set GENERATOR_MODEL_DIR (serve a model) or GENERATOR_BASE_CONFIG (verify adapters only)",
    path: ["GENERATOR_MODEL_DIR"],
  },
);
