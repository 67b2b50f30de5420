/**
 * Trainer service. Start-up order: config, store (with the conditional-write probe), subscriptions,
 * outbox (which resends whatever a previous process left pending), HTTP. Shutdown runs in reverse.
 */
import { totalmem } from "node:os";
import { join } from "node:path";
import { checkEgressUrl, egressFetch } from "@loracast/shared/egress";
import { loadModelSpec, type ModelSpec } from "@loracast/shared/model-spec";
import {
  createLogger,
  createMetricsRegistry,
  listen,
  onShutdown,
  parseCommandLine,
  systemClock,
} from "@loracast/shared/platform";
import { DecoderSession, Engine, ExecutionProviderError, OrtBackendError } from "@loracast/shared/runtime";
import { loadOrCreateSigner, TrustedKeys } from "@loracast/shared/signing";
import {
  AdapterStore,
  detectConditionalWrites,
  S3ObjectStore,
  s3SettingsFromEnv,
  waitForStoreOrExit,
} from "@loracast/shared/store";
import { loadTokenizer, type TextTokenizer } from "@loracast/shared/tokenizer";
import { TrainingSession } from "@loracast/shared/training";
import { Outbox } from "@loracast/shared/webhooks";
import { createApp } from "./app.ts";
import { cudaPrecision } from "./cuda-precision.ts";
import { dnsResolver, fanOutTemplate, type ResolveAddresses } from "./dns-fan-out.ts";
import { envSchema } from "./env.ts";
import { RunLedger } from "./ledger/index.ts";
import { TrainerMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { Readiness } from "./readiness.ts";
import { OtlpReporter } from "./reporting/index.ts";
import { clearUploadSpool } from "./routes/adapter-upload.ts";
import { CheckpointStore } from "./runs/checkpoints.ts";
import { LocalRollouts } from "./runs/rollouts.ts";
import { RunManager } from "./runs/run-manager.ts";
import { SubscriptionRegistry } from "./subscriptions.ts";

parseCommandLine({
  usage: "node --import tsx services/trainer/src/main.ts",
  about:
    "The trainer: publishes PEFT adapters to S3-compatible storage, trains runs on TRAINER_MODEL_DIR's base, and notifies generators with Standard Webhooks. Configured by the environment only.",
  flags: {},
  env: envSchema,
});
const parsed = envSchema.safeParse(process.env);
const log = createLogger({ service: "trainer" }, { level: parsed.data?.LOG_LEVEL ?? "info" });
if (!parsed.success) {
  for (const i of parsed.error.issues)
    log.error("invalid configuration", { variable: i.path.join("."), problem: i.message });
  process.exit(2);
}
const env = parsed.data;
const egress = { allowPrivate: env.TRAINER_EGRESS_ALLOW_PRIVATE };
for (const url of env.WEBHOOK_SUBSCRIBERS) {
  const checked = checkEgressUrl(fanOutTemplate(url) ?? url, egress);
  if (!checked.ok) {
    log.error("invalid configuration", {
      variable: "WEBHOOK_SUBSCRIBERS",
      problem: `${url}: ${checked.error.message}`,
    });
    process.exit(2);
  }
}
const outboundFetch = egressFetch(egress);
let resolveAddresses: ResolveAddresses;
try {
  resolveAddresses = dnsResolver(env.TRAINER_DNS_SERVERS, systemClock);
} catch (e) {
  log.error("invalid configuration", { variable: "TRAINER_DNS_SERVERS", problem: (e as Error).message });
  process.exit(2);
}

// Before any CUDA session: cuBLAS reads NVIDIA_TF32_OVERRIDE when the CUDA EP's library loads it,
// which onnxruntime-node does at the first CUDA session, not at import.
const precision = cudaPrecision(
  env.TRAINER_CUDA_TF32,
  env.TRAINER_EXECUTION_PROVIDER,
  process.env.NVIDIA_TF32_OVERRIDE,
);
if (!precision.ok) {
  log.error("invalid configuration", { variable: "TRAINER_CUDA_TF32", problem: precision.error });
  process.exit(2);
}
if (precision.value.overrideTf32Off) process.env.NVIDIA_TF32_OVERRIDE = "0";

let spec: ModelSpec | null = null;
/** The rollout decoder's binding, for the start-up log and /metrics; null without a model. */
let rolloutBackend: { backend: string; ep: string; reason: string } | null = null;
let training: {
  session: TrainingSession;
  rollouts: LocalRollouts;
  tokenizer: TextTokenizer;
  memoryBudgetBytes: number;
} | null = null;
if (env.TRAINER_MODEL_DIR !== undefined) {
  const dir = env.TRAINER_MODEL_DIR;
  const options = {
    executionProviders: [env.TRAINER_EXECUTION_PROVIDER],
    ...(env.TRAINER_THREADS === 0 ? {} : { intraOpThreads: env.TRAINER_THREADS }),
  };
  const [session, decoder] = await Promise.all([
    TrainingSession.load(dir, options),
    // Rollouts always run an adapter (the KL reference is the training graph's): a base graph
    // would be a second session over the weights that no step uses.
    DecoderSession.load(dir, {
      ...options,
      ...precision.value.decoder,
      backend: env.TRAINER_ORT_BACKEND,
      baseGraph: "off",
    }),
  ]);
  // A provider that cannot load is a setting to fix, named as the configuration errors are.
  const setting = (e: Error) =>
    e instanceof ExecutionProviderError
      ? { variable: "TRAINER_EXECUTION_PROVIDER" }
      : e instanceof OrtBackendError
        ? { variable: "TRAINER_ORT_BACKEND" }
        : {};
  if (!session.ok) {
    log.error("cannot load the training graph", {
      ...setting(session.error),
      dir,
      error: session.error.message,
    });
    process.exit(2);
  }
  if (!decoder.ok) {
    log.error("cannot load the decoder", { ...setting(decoder.error), dir, error: decoder.error.message });
    process.exit(2);
  }
  spec = session.value.spec;
  training = {
    session: session.value,
    rollouts: new LocalRollouts(new Engine(decoder.value, { maxBatch: 64 })),
    tokenizer: await loadTokenizer(dir, {
      ...session.value.manifest,
      vocabSize: session.value.manifest.dims.vocabSize,
    }),
    memoryBudgetBytes:
      env.TRAINER_MEMORY_BUDGET_MB !== undefined
        ? env.TRAINER_MEMORY_BUDGET_MB * 2 ** 20
        : env.TRAINER_EXECUTION_PROVIDER === "cpu"
          ? 0.4 * totalmem()
          : 8192 * 2 ** 20,
  };
  log.info("training memory budget", {
    mb: Math.round(training.memoryBudgetBytes / 2 ** 20),
    executionProvider: env.TRAINER_EXECUTION_PROVIDER,
  });
  log.info("cuda precision", {
    variable: "TRAINER_CUDA_TF32",
    tf32: precision.value.tf32,
    nvidiaTf32Override: process.env.NVIDIA_TF32_OVERRIDE ?? null,
  });
  log.info("rollout decoder", {
    executionProvider: decoder.value.ep,
    backend: decoder.value.backend,
    backendReason: decoder.value.backendReason,
  });
  rolloutBackend = {
    backend: decoder.value.backend,
    ep: decoder.value.ep,
    reason: decoder.value.backendReason,
  };
} else if (env.TRAINER_BASE_CONFIG !== undefined) {
  const r = await loadModelSpec(env.TRAINER_BASE_CONFIG);
  if (!r.ok) {
    log.error("invalid base config", { error: r.error.message });
    process.exit(2);
  }
  spec = r.value;
}

const keyFile = env.TRAINER_SIGNING_KEY_FILE ?? join(env.TRAINER_DATA_DIR, "signing-key.pem");
const signer = await loadOrCreateSigner(keyFile);
if (!signer.ok) {
  log.error("cannot load the signing key", {
    variable: "TRAINER_SIGNING_KEY_FILE",
    error: signer.error.message,
  });
  process.exit(2);
}
// Generators list this key in MANIFEST_PUBLIC_KEYS; earlier keys stay accepted during a rotation.
log.info("signing", { keyFile, keyId: signer.value.keyId, publicKey: signer.value.publicKey });

const settings = s3SettingsFromEnv(env);
const objects = new S3ObjectStore(settings, {
  onAborted: (u) => log.info("abandoned multipart upload aborted", { ...u }),
  onAbortFailed: (u) =>
    log.warn("multipart upload abort failed; retrying", {
      key: u.key,
      uploadId: u.uploadId,
      attempt: u.attempt,
      error: u.error.message,
    }),
});
// The conditional-write probe is the trainer's first request: it also finds a wrong setting or an outage.
const conditional = await waitForStoreOrExit({
  probe: () => detectConditionalWrites(objects, `.probe/conditional-${env.TRAINER_INSTANCE}`),
  target: settings,
  log,
  timeoutMs: env.S3_STARTUP_TIMEOUT_S * 1000,
});
// Before this process uploads anything: every multipart upload under the prefix is a dead one's.
await objects.sweepAbandonedUploads(new Date(performance.timeOrigin)).then(
  (count) => log.info("abandoned multipart uploads swept", { count }),
  (e: unknown) => log.warn("abandoned multipart uploads not swept", { error: e }),
);
log.info("store", {
  store: objects.describe,
  conditionalWrites: conditional,
  mode: conditional
    ? "server enforces immutable manifests"
    : "server ignores If-None-Match; one trainer per run serialises writes",
});

// A process killed mid-upload leaves its spooled files behind; none is in use before this one serves.
const uploadsDir = join(env.TRAINER_DATA_DIR, "uploads");
const leftovers = await clearUploadSpool(uploadsDir);
if (leftovers.entries > 0) log.info("upload leftovers cleared", { dir: uploadsDir, ...leftovers });

const metrics = new TrainerMetrics(createMetricsRegistry({ processMetrics: true }));
if (rolloutBackend !== null) {
  metrics.rolloutBackend(rolloutBackend);
  metrics.cudaTf32(precision.value.tf32);
}
const subscriptions = new SubscriptionRegistry(
  join(env.TRAINER_DATA_DIR, "subscriptions.json"),
  env.WEBHOOK_SUBSCRIBERS,
  { resolve: resolveAddresses, egress, log },
);
await subscriptions.load();
const outbox = new Outbox({
  dir: join(env.TRAINER_DATA_DIR, "outbox"),
  secret: env.WEBHOOK_SECRET,
  clock: systemClock,
  log,
  retries: env.WEBHOOK_RETRIES,
  fetch: outboundFetch,
  onDelivered: (ms) => metrics.delivered(ms),
  stillWanted: (d) => subscriptions.stillWanted(d),
});
await outbox.start();

const store = new AdapterStore(objects, {
  signer: signer.value,
  trusted: new TrustedKeys([signer.value.publicKey, ...env.MANIFEST_PUBLIC_KEYS]),
  onRefused: (r) => log.warn("store record refused", { ...r }),
  onBlobRepaired: (r) => log.warn("corrupt blob repaired", { ...r }),
});
const publisher = new Publisher({
  store,
  outbox,
  subscriptions,
  clock: systemClock,
  log,
  instance: env.TRAINER_INSTANCE,
  spec,
  ledger: new RunLedger({
    store,
    dir: join(env.TRAINER_DATA_DIR, "ledger"),
    clock: systemClock,
    log,
    headTtlMs: env.TRAINER_HEAD_TTL_S * 1000,
  }),
  onPublished: (phasesMs) => metrics.published(phasesMs),
});
const repairStore = (): void =>
  void publisher.repairAll().catch((e: unknown) => log.warn("store repair pass failed", { error: e }));
repairStore();
const storeRepair = setInterval(repairStore, env.TRAINER_REPAIR_INTERVAL_S * 1000);
const headRefresh = setInterval(
  () => void publisher.refreshHeads().catch((e: unknown) => log.warn("head refresh failed", { error: e })),
  (env.TRAINER_HEAD_TTL_S * 1000) / 4,
);
const otlp =
  env.OTEL_EXPORTER_OTLP_ENDPOINT === undefined && env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT === undefined
    ? null
    : new OtlpReporter(env.OTEL_METRIC_EXPORT_INTERVAL, env.TRAINER_INSTANCE, log);
if (otlp !== null) {
  log.info("run metrics exported over OTLP", {
    endpoint: env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? `${env.OTEL_EXPORTER_OTLP_ENDPOINT}/v1/metrics`,
    intervalMs: env.OTEL_METRIC_EXPORT_INTERVAL,
  });
}
const runs =
  training === null
    ? null
    : new RunManager({
        dataDir: env.TRAINER_DATA_DIR,
        tensorboardDir: env.TRAINER_TENSORBOARD_DIR ?? join(env.TRAINER_DATA_DIR, "tensorboard"),
        otlp,
        maxResumes: env.TRAINER_MAX_RESUMES,
        ...training,
        publish: async (run, files, extras) => {
          const r = await publisher.publish(run, files.configBytes, files.weights, {
            extras,
            weightsSha256: files.sha256,
            phasesMs: files.phasesMs,
          });
          if (!r.ok) throw r.error;
          return r.value;
        },
        checkpoints: new CheckpointStore(objects),
        publishedWeights: async (run) => {
          const { versions } = await publisher.versions(run);
          const live = versions.filter(
            (v) => v.sha256 !== null && (v.state === "active" || v.state === "retired"),
          );
          return new Map(live.map((v) => [v.sha256 as string, v.version]));
        },
        clock: systemClock,
        log,
        egress,
        cwd: process.cwd(),
        fetch: outboundFetch,
        onEvent: (e) => metrics.runEvent(e),
      });
const app = createApp({
  publisher,
  store,
  runs,
  subscriptions,
  objects,
  abandonedUploads: objects.abandoned,
  outbox,
  log,
  apiToken: env.TRAINER_API_TOKEN,
  egress,
  uploads: { dir: uploadsDir, maxBytes: env.MAX_UPLOAD_MB * 1024 * 1024 },
  metrics,
  readiness: new Readiness({
    probeStore: () => objects.list(".probe/"),
    outboxStarted: () => outbox.started,
    model: training === null ? "not_configured" : "loaded",
    clock: systemClock,
  }),
  sseHeartbeatMs: env.TRAINER_SSE_HEARTBEAT_S * 1000,
});
// Before listening, so that every run on disk answers from the first request on.
await runs?.resumeAll();
const server = await listen(app.fetch, env.TRAINER_HOST, env.TRAINER_PORT);
onShutdown(log, async () => {
  // First, so a run's history records that this stop was clean (not a crash to count).
  runs?.shutdown();
  clearInterval(headRefresh);
  clearInterval(storeRepair);
  await server.close();
  outbox.stop();
  objects.abandoned.stop();
  objects.client.destroy();
  await otlp?.shutdown();
});
// Only once SIGTERM is handled: whoever waits for this line may stop the trainer at once.
log.info("ready", { url: server.url, subscribers: subscriptions.urls(), base: spec?.fingerprint ?? null });
