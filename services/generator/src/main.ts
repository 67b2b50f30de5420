import { loadModelSpec, type ModelSpec, type VerifiedAdapter } from "@loracast/shared/model-spec";
import {
  createLogger,
  createMetricsRegistry,
  listen,
  onShutdown,
  parseCommandLine,
  systemClock,
} from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import {
  adapterFeeds,
  BaseGraphMissingError,
  DecoderSession,
  Engine,
  ExecutionProviderError,
  OrtBackendError,
  sequenceLogprobs,
  sessionsCreated,
} from "@loracast/shared/runtime";
import { TrustedKeys } from "@loracast/shared/signing";
import { AdapterStore, S3ObjectStore, s3SettingsFromEnv, waitForStoreOrExit } from "@loracast/shared/store";
import { loadTokenizer } from "@loracast/shared/tokenizer";
import { ReplayCache } from "@loracast/shared/webhooks";
import { AliasRegistry } from "./aliases/index.ts";
import { createApp } from "./app.ts";
import { generatorEnvSchema } from "./env.ts";
import { InferenceService } from "./inference/inference-service.ts";
import { AdapterManager } from "./lifecycle/index.ts";
import { GeneratorMetrics } from "./metrics.ts";

parseCommandLine({
  usage: "node --import tsx services/generator/src/main.ts",
  about:
    "A generator: pulls, verifies and activates each adapter version the trainer publishes, and serves the base and its adapters through an OpenAI/vLLM-compatible API. Configured by the environment only.",
  flags: {},
  env: generatorEnvSchema,
});
const parsed = generatorEnvSchema.safeParse(process.env);
const log0 = createLogger({ service: "generator" }, { level: parsed.data?.LOG_LEVEL ?? "info" });
if (!parsed.success) {
  for (const i of parsed.error.issues)
    log0.error("invalid configuration", { variable: i.path.join("."), problem: i.message });
  process.exit(2);
}
const env = parsed.data;
const log = log0.child({ instance: env.GENERATOR_NAME });
// Trust only what the trainer signed: no keys is a refusal unless the operator opts out by name.
if (env.MANIFEST_PUBLIC_KEYS.length === 0 && !env.GENERATOR_ALLOW_UNSIGNED) {
  log.error(
    "MANIFEST_PUBLIC_KEYS is not set: give it the trainer's public key (the trainer logs it at start as " +
      '"msg":"signing", "publicKey"), or set GENERATOR_ALLOW_UNSIGNED=true to serve unsigned metadata',
    { variable: "MANIFEST_PUBLIC_KEYS" },
  );
  process.exit(2);
}

let spec: ModelSpec;
let session: DecoderSession | null = null;
let alsoAccept: string[] = [];
if (env.GENERATOR_MODEL_DIR !== undefined) {
  const loaded = await DecoderSession.load(env.GENERATOR_MODEL_DIR, {
    executionProviders: [env.GENERATOR_EXECUTION_PROVIDER],
    backend: env.GENERATOR_ORT_BACKEND,
    baseGraph: env.GENERATOR_BASE_GRAPH,
    ...(env.GENERATOR_THREADS > 0 ? { intraOpThreads: env.GENERATOR_THREADS } : {}),
  });
  if (!loaded.ok) {
    // A provider that cannot load is a setting to fix, named as the configuration errors are.
    const setting =
      loaded.error instanceof ExecutionProviderError
        ? { variable: "GENERATOR_EXECUTION_PROVIDER" }
        : loaded.error instanceof OrtBackendError
          ? { variable: "GENERATOR_ORT_BACKEND" }
          : loaded.error instanceof BaseGraphMissingError
            ? { variable: "GENERATOR_BASE_GRAPH" }
            : {};
    log.error("cannot load the model", { ...setting, error: loaded.error.message });
    process.exit(2);
  }
  session = loaded.value;
  spec = session.spec;
  // spec.fingerprint is the module map's (`spec-sha256:`), the one trainers stamp. Trainers before it
  // stamped the artifacts' digest (`sha256:`); manifests they signed stay valid on these artifacts.
  alsoAccept = [session.manifest.fingerprint];
} else {
  const read = await loadModelSpec(env.GENERATOR_BASE_CONFIG ?? "");
  if (!read.ok) {
    log.error("cannot load the base model", { error: read.error.message });
    process.exit(2);
  }
  spec = read.value;
}
log.info("base loaded", {
  fingerprint: spec.fingerprint,
  modules: spec.modules.size,
  engine: session !== null,
  ...(session !== null
    ? {
        executionProvider: session.ep,
        backend: session.backend,
        backendReason: session.backendReason,
        baseGraph: session.baseGraph.graphPath !== null,
        baseGraphReason: session.baseGraph.reason,
        // How the graph computes each LoRA pair's x·Aᵀ (build-model --lora-form); on webgpu the
        // default gemm form costs a fixed ~13 ms per decode step at rank 16 (docs/architecture.md).
        loraForm: session.manifest.decoder.loraForm ?? "gemm",
        // ONNX ops per LoRA branch, or one fused node that only the addon runs (build-model --lora-op).
        loraOp: session.manifest.decoder.loraOp ?? "gemm",
      }
    : {}),
});
if (session !== null && session.ep === "cpu" && session.manifest.decoder.loraOp === "shrink-expand")
  // The fused LoRA ops are for CUDA: their CPU kernels are reference loops, and a 4-bit model's
  // MatMulNBitsLora is many times slower than MLAS's MatMulNBits (README, "Run on a GPU").
  log.warn(
    "shrink-expand model on the cpu: its fused LoRA ops run reference loops here, far slower than a gemm build",
    {
      fix: "build the CPU's model with --lora-op gemm (the default)",
    },
  );

const settings = s3SettingsFromEnv(env);
const objects = new S3ObjectStore(settings);
// One cheap listing before serving: a wrong setting or an outage shows now, not as reconcile warnings.
await waitForStoreOrExit({
  probe: () => objects.list(".probe/"),
  target: settings,
  log,
  timeoutMs: env.S3_STARTUP_TIMEOUT_S * 1000,
});
const trusted = env.MANIFEST_PUBLIC_KEYS.length === 0 ? null : new TrustedKeys(env.MANIFEST_PUBLIC_KEYS);
if (trusted === null) {
  log.warn("MANIFEST_PUBLIC_KEYS is not set: manifests and rollback records are not signature-checked", {
    risk: "anyone who can write to the bucket chooses what this generator serves",
  });
} else log.info("manifest signatures required", { keyIds: trusted.ids });
const metrics = new GeneratorMetrics(createMetricsRegistry({ processMetrics: true }));
const store = new AdapterStore(objects, {
  trusted,
  onRefused: (r) => log.warn("store record refused", { ...r }),
});
const manager = new AdapterManager({
  store,
  spec,
  alsoAccept,
  clock: systemClock,
  log,
  bounds: { maxVersions: env.CACHE_MAX_VERSIONS, maxBytes: Math.floor(env.CACHE_MAX_MB * 1024 * 1024) },
  maxRank: env.MAX_LORA_RANK,
  runs: env.GENERATOR_RUNS.length === 0 ? null : env.GENERATOR_RUNS,
  serveRevoked: env.GENERATOR_SERVE_REVOKED,
  onActivated: (s) => metrics.activated(s),
  ...(session !== null
    ? {
        // Packed for the fused graph here, once per version, not on its first step.
        prepare: (v) => session.prepare(adapterFeeds(spec, v)),
        probe: {
          score: (feeds, tokens) => sequenceLogprobs(session, feeds, tokens),
          tolerance: env.PROBE_TOLERANCE,
        },
      }
    : {}),
});

const aliases = new AliasRegistry(
  {
    pin: (r) => manager.pin(r),
    hold: (bytes) => manager.cache.hold(bytes),
    versionBytesHeld: (pinned) => manager.cache.versionBytesHeld(pinned),
    maxBytes: manager.cache.maxBytes,
  },
  env.GENERATOR_MAX_LORA_ALIASES,
);

let inference = null;
if (session !== null && env.GENERATOR_MODEL_DIR !== undefined) {
  const engine = new Engine(session, { maxBatch: env.GENERATOR_MAX_BATCH });
  const tokenizer = await loadTokenizer(env.GENERATOR_MODEL_DIR, {
    vocabSize: spec.dims.vocabSize,
    bosTokenId: session.manifest.bosTokenId,
    eosTokenIds: session.manifest.eosTokenIds,
  });
  const service = new InferenceService({
    session,
    engine,
    tokenizer,
    manager,
    aliases,
    baseName: env.GENERATOR_MODEL_NAME,
    rng: createRng(env.GENERATOR_SEED),
    log,
    promptLogprobsMaxBytes: env.GENERATOR_PROMPT_LOGPROBS_MAX_MB * 1024 * 1024,
    observe: metrics,
  });
  inference = {
    service,
    metrics: {
      sessionsCreated,
      backend: { backend: session.backend, ep: session.ep, reason: session.backendReason },
      baseGraph: { on: session.baseGraph.graphPath !== null, reason: session.baseGraph.reason },
      graphSteps: () => session.stepCounts(),
      stats: engine.stats,
      get load() {
        return engine.load;
      },
      get queued() {
        return engine.queued;
      },
    },
  };
}

const app = createApp({
  manager,
  aliases,
  admin: {
    adminToken: env.GENERATOR_ADMIN_TOKEN,
    host: env.GENERATOR_HOST,
    store: { bucket: settings.bucket, prefix: settings.prefix },
    local: {
      spec,
      allowedDirs: env.GENERATOR_LORA_DIRS,
      maxRank: env.MAX_LORA_RANK,
      maxBytes: Math.floor(env.CACHE_MAX_MB * 1024 * 1024),
      ...(session !== null
        ? { prepare: (v: VerifiedAdapter) => session.prepare(adapterFeeds(spec, v)) }
        : {}),
    },
  },
  objects,
  store,
  log,
  baseName: env.GENERATOR_MODEL_NAME,
  secrets: env.WEBHOOK_SECRETS,
  toleranceSeconds: env.WEBHOOK_TOLERANCE_S,
  replays: new ReplayCache(systemClock, 2 * env.WEBHOOK_TOLERANCE_S * 1000),
  clock: systemClock,
  inference,
  maxRequestBytes: env.GENERATOR_MAX_REQUEST_BYTES,
  metrics,
  sseHeartbeatMs: env.GENERATOR_SSE_HEARTBEAT_S * 1000,
});
const server = await listen(app.fetch, env.GENERATOR_HOST, env.GENERATOR_PORT);

let stopped = false;
const loop = async (): Promise<void> => {
  while (!stopped) {
    await manager.reconcile();
    await new Promise((r) => setTimeout(r, env.RECONCILE_INTERVAL_MS));
  }
};
void loop();

onShutdown(log, async () => {
  stopped = true;
  await server.close();
  await session?.release();
  objects.client.destroy();
});
// Only once SIGTERM is handled: whoever waits for this line may stop the generator at once.
log.info("ready", { url: server.url });
