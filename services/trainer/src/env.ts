import { envBool, commaList as list, logLevel, sseHeartbeatSeconds } from "@loracast/shared/platform";
import { executionProviderSchema, ortBackendSchema } from "@loracast/shared/runtime";
import { publicKeyList } from "@loracast/shared/signing";
import { s3EnvSchema } from "@loracast/shared/store";
import { isValidSecret } from "@loracast/shared/webhooks";
import { z } from "zod";
import { cudaTf32Setting } from "./cuda-precision.ts";

/** The trainer's environment: the store's `S3_*` settings plus its own, parsed once at start by `main.ts`. */
export const envSchema = s3EnvSchema.extend({
  /**
   * Lowest level logged: debug, info, warn or error. Above info the `ready` line (an info line) is
   * dropped too: wait on `/readyz` instead.
   */
  LOG_LEVEL: logLevel,
  /** Interface to listen on. */
  TRAINER_HOST: z.string().default("127.0.0.1"),
  /** Port; 0 picks a free one, printed on the ready line. */
  TRAINER_PORT: z.coerce.number().int().min(0).max(65535).default(8700),
  /**
   * Local state: the webhook outbox, registered subscriptions, each run's status record and event
   * history (`runs/<run>.json`, `runs/<run>.events.jsonl`), the ledger of what the trainer signed
   * (`ledger/<run>.json`: heads and rollback records, which it restores to the store when they go
   * missing) and upload spool files (`uploads/`, cleared at start). Must survive restarts.
   */
  TRAINER_DATA_DIR: z.string().default(".data/trainer"),
  /**
   * Bearer token (`Authorization: Bearer <token>`) every request must carry except `/healthz`,
   * `/metrics` and the version reads generators make (`GET /v1/runs/:run/versions`).
   */
  TRAINER_API_TOKEN: z.string().min(16, "use at least 16 characters"),
  /** Identifies this trainer in manifests (`publisher.instance`). */
  TRAINER_INSTANCE: z.string().default("trainer-0"),
  /**
   * PEM (PKCS#8) Ed25519 private key that signs every manifest and rollback record; created there
   * when the file does not exist. Default: `signing-key.pem` in TRAINER_DATA_DIR.
   */
  TRAINER_SIGNING_KEY_FILE: z.string().optional(),
  /**
   * Public keys (base64 raw Ed25519, comma-separated) the trainer accepts besides its own when it
   * reads manifests and rollback records back: the keys of earlier trainers, during a rotation.
   */
  MANIFEST_PUBLIC_KEYS: publicKeyList,
  /**
   * How long each run's signed head is valid, in seconds; the trainer re-signs every head at a
   * quarter of it, so generators that see an expired head know the store (or the trainer) is frozen.
   */
  TRAINER_HEAD_TTL_S: z.coerce.number().int().min(60).default(86_400),
  /**
   * How often, in seconds, the trainer checks each run's head and rollback records against its
   * ledger and repairs them (also once at start).
   */
  TRAINER_REPAIR_INTERVAL_S: z.coerce.number().int().min(1).max(86_400).default(60),
  /** Standard Webhooks secret (`whsec_…`) that signs events; generators hold the same. */
  WEBHOOK_SECRET: z.string().refine(isValidSecret, "must be whsec_ followed by at least 24 base64 bytes"),
  /**
   * Let outbound URLs (webhook subscribers, HTTP rewards, generator fleets) reach loopback and
   * private addresses (127/8, 10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10). Off by default;
   * link-local and cloud-metadata addresses (169.254/16, fe80::/10, fd00:ec2::254) are refused
   * whatever it says. The local stack sets it: its generators listen on 127.0.0.1.
   */
  TRAINER_EGRESS_ALLOW_PRIVATE: envBool.default(false),
  /**
   * Comma-separated webhook URLs notified on every event, besides those registered over the API.
   * `dns+http://<name>:<port>/<path>` (or `dns+https`) notifies every address `<name>` resolves to
   * at each event, one delivery each: a Kubernetes headless Service's name reaches every ready
   * generator pod (`dns-fan-out.ts`).
   */
  WEBHOOK_SUBSCRIBERS: list,
  /**
   * DNS servers (`ip` or `ip:port`, comma-separated) that resolve `dns+` subscribers; empty uses
   * the system's (`/etc/resolv.conf`, as in a Kubernetes pod).
   */
  TRAINER_DNS_SERVERS: list,
  /** Retries per webhook delivery round (p-retry, exponential backoff with jitter). */
  WEBHOOK_RETRIES: z.coerce.number().int().min(0).default(5),
  /**
   * Built model artifacts (npm run build-model) with the training graph. When set, the trainer
   * trains runs on this base and verifies every adapter against its module map and fingerprint.
   */
  TRAINER_MODEL_DIR: z.string().optional(),
  /** Execution provider for the training graph and in-process rollouts. */
  TRAINER_EXECUTION_PROVIDER: executionProviderSchema.default("cpu"),
  /**
   * The ORT binding of the in-process rollouts' decoder (the training graph runs on onnxruntime-node):
   * `auto` (loracast's ort-native addon on cuda where it loads, and on any provider for a model built
   * with `--lora-op shrink-expand`), `ort-native` or `onnxruntime-node` (refused for such a model).
   */
  TRAINER_ORT_BACKEND: ortBackendSchema.default("auto"),
  /**
   * `cuda` only: whether float32 MatMul/Gemm of the training graph and the rollout decoder may use
   * TF32 tensor cores. `off` (the default) is the precision the gradient conformance checks; it sets
   * `NVIDIA_TF32_OVERRIDE=0` for the process (`cuda-precision.ts`), so a conflicting
   * `NVIDIA_TF32_OVERRIDE` refuses the start.
   */
  TRAINER_CUDA_TF32: cudaTf32Setting,
  /** ORT intra-op threads for training and in-process rollouts; 0 lets ORT decide. */
  TRAINER_THREADS: z.coerce.number().int().min(0).default(0),
  /**
   * Activation memory one training pass may use, in MiB: it chooses each step's micro-batch (the
   * sequences per forward/backward pass) for runs whose config sets no `microBatch`
   * (shared/training/memory.ts). Default: 40% of host memory on the CPU EP; 8192 on GPU EPs, whose
   * free memory onnxruntime-node cannot read.
   */
  TRAINER_MEMORY_BUDGET_MB: z.coerce.number().positive().optional(),
  /** Optional HF config.json of the base (when there is no TRAINER_MODEL_DIR), to verify adapters against. */
  TRAINER_BASE_CONFIG: z.string().optional(),
  /**
   * Consecutive trainer stops (crashes, kills, restarts) a run may go through without a new
   * checkpoint; at this many it is failed with the reason instead of resumed again.
   */
  TRAINER_MAX_RESUMES: z.coerce.number().int().positive().default(3),
  /**
   * The folder TensorBoard event files go to, for runs with `reportTo: ["tensorboard"]`: each run
   * writes under `<this>/<loggingDir or run name>`, never elsewhere. Point `tensorboard --logdir`
   * here. Default: `tensorboard` in TRAINER_DATA_DIR.
   */
  TRAINER_TENSORBOARD_DIR: z.string().min(1).optional(),
  /**
   * OpenTelemetry's standard exporter settings: with either endpoint set, the trainer exports every
   * run's scalars as OTLP/HTTP JSON metrics (reporting/otlp.ts; the exporter reads the variables).
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  /** The metrics-only endpoint (full URL, `…/v1/metrics`); overrides OTEL_EXPORTER_OTLP_ENDPOINT for metrics. */
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: z.url().optional(),
  /** OpenTelemetry's export interval for metrics, in ms (its default, 60000). */
  OTEL_METRIC_EXPORT_INTERVAL: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /**
   * Seconds between the SSE comments (`: ping`) a run's event stream sends while the run is quiet,
   * so that idle-body timeouts on the way (undici's 300 s, a proxy's) do not cut it; 0.1 to 120.
   */
  TRAINER_SSE_HEARTBEAT_S: sseHeartbeatSeconds,
  /** Largest accepted upload, in MiB. */
  MAX_UPLOAD_MB: z.coerce.number().positive().default(2048),
});
