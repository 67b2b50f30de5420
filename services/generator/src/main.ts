/**
 * Generator service. Start-up order: config, base model spec (loaded once), store, adapter manager,
 * HTTP, then reconcile at once and on an interval. Shutdown: stop reconciling, close HTTP, close the store.
 */
import { loadModelSpec } from "@loracast/shared/model-spec";
import { createLogger, listen, onShutdown, systemClock } from "@loracast/shared/platform";
import { AdapterStore, S3ObjectStore, s3SettingsFromEnv } from "@loracast/shared/store";
import { ReplayCache } from "@loracast/shared/webhooks";
import { createApp } from "./app.ts";
import { envSchema } from "./env.ts";
import { AdapterManager } from "./lifecycle/index.ts";

const log0 = createLogger({ service: "generator" });
const parsed = envSchema.safeParse(process.env);
if (!parsed.success) {
  for (const i of parsed.error.issues)
    log0.error("invalid configuration", { variable: i.path.join("."), problem: i.message });
  process.exit(2);
}
const env = parsed.data;
const log = log0.child({ instance: env.GENERATOR_NAME });

const spec = await loadModelSpec(env.GENERATOR_BASE_CONFIG);
if (!spec.ok) {
  log.error("cannot load the base model", { error: spec.error.message });
  process.exit(2);
}
log.info("base loaded", { fingerprint: spec.value.fingerprint, modules: spec.value.modules.size });

const objects = new S3ObjectStore(s3SettingsFromEnv(env));
const manager = new AdapterManager({
  store: new AdapterStore(objects),
  spec: spec.value,
  clock: systemClock,
  log,
  bounds: { maxVersions: env.CACHE_MAX_VERSIONS, maxBytes: env.CACHE_MAX_MB * 1024 * 1024 },
  maxRank: env.MAX_LORA_RANK,
  runs: env.GENERATOR_RUNS.length === 0 ? null : env.GENERATOR_RUNS,
});
const app = createApp({
  manager,
  objects,
  log,
  baseName: env.GENERATOR_MODEL_NAME,
  secrets: env.WEBHOOK_SECRETS,
  toleranceSeconds: env.WEBHOOK_TOLERANCE_S,
  replays: new ReplayCache(systemClock, 2 * env.WEBHOOK_TOLERANCE_S * 1000),
  clock: systemClock,
});
const server = await listen(app.fetch, env.GENERATOR_HOST, env.GENERATOR_PORT);
log.info("ready", { url: server.url });

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
  objects.client.destroy();
});
