import type { Readiness } from "@loracast/shared/generator-api";
import { metricsHandler, observedCounter, observedGauge, type Registry } from "@loracast/shared/platform";
import type { AdapterStore, ObjectStore } from "@loracast/shared/store";
import { Hono } from "hono";
import type { AliasRegistry } from "../aliases/index.ts";
import { errorResponse } from "../errors.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/** What the inference engine reports in /metrics. */
export interface EngineMetrics {
  sessionsCreated(): number;
  /** The decoder's ORT binding, its execution provider and why that binding (`DecoderSession.backend`). */
  backend: { backend: string; ep: string; reason: string };
  /** Whether base-only requests run on the decoder graph without LoRA inputs, and why (`DecoderSession.baseGraph`). */
  baseGraph: { on: boolean; reason: string };
  /** Steps run on each decoder graph (`DecoderSession.stepCounts`). */
  graphSteps(): { lora: number; base: number };
  stats: { prefills: number; decodeSteps: number; tokens: number };
  /** Sequences queued or being decoded (`Engine.load`). */
  load: number;
  /** Sequences queued for a prefill (`Engine.queued`): `loracast_generator_queue_depth`. */
  queued: number;
}

/**
 * `GET /healthz`, `GET /readyz` and `GET /metrics` (Prometheus text from `registry`: these routes
 * register the lifecycle, cache, alias and engine series on it, read at each scrape).
 */
export function opsRoutes(
  registry: Registry,
  manager: AdapterManager,
  aliases: AliasRegistry,
  objects: ObjectStore,
  store: AdapterStore,
  rejected: Map<string, number>,
  engine: EngineMetrics | null,
): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    if (!manager.ready)
      return errorResponse(c, "not_ready", "the latest adapter versions have not been resolved yet");
    const body: Readiness = { status: "ready", active: manager.activeVersions() };
    return c.json(body);
  });
  registerMetrics(registry, manager, aliases, objects, store, rejected, engine);
  app.get("/metrics", metricsHandler(registry));
  return app;
}

/** The series read from the lifecycle, cache, aliases, store and engine at each scrape. */
function registerMetrics(
  registry: Registry,
  manager: AdapterManager,
  aliases: AliasRegistry,
  objects: ObjectStore,
  store: AdapterStore,
  rejected: Map<string, number>,
  engine: EngineMetrics | null,
): void {
  const counter = (name: string, help: string, read: () => number) =>
    observedCounter(registry, { name, help, read });
  const gauge = (name: string, help: string, read: () => number) =>
    observedGauge(registry, { name, help, read });
  counter(
    "loracast_adapter_activations_total",
    "Adapter versions activated, rollbacks included.",
    () => manager.stats.activations,
  );
  counter(
    "loracast_adapter_failures_total",
    "Adapter versions failed here: verification, a store fault, or withdrawn.",
    () => manager.stats.failures,
  );
  counter(
    "loracast_webhook_events_refused_total",
    "Webhook events refused because they announce other manifest bytes than the store holds.",
    () => manager.stats.badEvents,
  );
  counter(
    "loracast_reconciles_total",
    "Reconcile passes against the store, started.",
    () => manager.stats.reconciles,
  );
  counter(
    "loracast_reconcile_errors_total",
    "Reconcile passes that could not read the store.",
    () => manager.stats.reconcileErrors,
  );
  counter(
    "loracast_store_downloaded_bytes_total",
    "Bytes downloaded from the object store.",
    () => objects.traffic.downloaded,
  );
  gauge("loracast_adapter_cache_bytes", "Adapter weight bytes held in memory.", () =>
    manager.cache.heldBytes(),
  );
  gauge(
    "loracast_adapter_cache_max_bytes",
    "The adapter cache's bound in bytes (CACHE_MAX_MB).",
    () => manager.cache.maxBytes,
  );
  gauge(
    "loracast_adapter_cache_unevictable_bytes",
    "Bytes no eviction frees: what load_lora_adapter aliases hold.",
    () => aliases.heldBytes(),
  );
  observedCounter(registry, {
    name: "loracast_lora_alias_loads_refused_total",
    help: "load_lora_adapter calls refused for a bound: max_aliases (GENERATOR_MAX_LORA_ALIASES) or cache_bytes.",
    labelNames: ["reason"],
    read: () =>
      [...aliases.refusals].map(([code, n]) => [
        { reason: code === "full" ? "max_aliases" : "cache_bytes" },
        n,
      ]),
  });
  observedGauge(registry, {
    name: "loracast_active_adapter_version",
    help: "The version each run serves.",
    labelNames: ["run"],
    read: () => Object.entries(manager.activeVersions()).map(([run, a]) => [{ run }, a.version]),
  });
  observedCounter(registry, {
    name: "loracast_revoked_requests_total",
    help: "Requests naming a revoked version exactly, refused (410) or served (GENERATOR_SERVE_REVOKED).",
    labelNames: ["run", "outcome"],
    read: () =>
      [...manager.stats.revokedRequests].flatMap(([run, n]) => [
        [{ run, outcome: "refused" }, n.refused] as const,
        [{ run, outcome: "served" }, n.served] as const,
      ]),
  });
  gauge(
    "loracast_manifest_signatures_required",
    "1 when manifests must carry a trusted signature (MANIFEST_PUBLIC_KEYS set), else 0.",
    () => (store.verifiesSignatures ? 1 : 0),
  );
  observedCounter(registry, {
    // By kind and code (STORE_REFUSAL_CODES in shared/manifest).
    name: "loracast_store_records_refused_total",
    help: "Store records refused on read, by record kind and reason.",
    labelNames: ["record", "reason"],
    read: () => store.refusals.counters().map((r) => [{ record: r.record, reason: r.code }, r.count]),
  });
  observedGauge(registry, {
    name: "loracast_store_stale_state",
    help: "1 per run and finding while its store state is staler than its newest signed head.",
    labelNames: ["run", "finding"],
    read: () => manager.heads.all().map((f) => [{ run: f.run, finding: f.finding }, 1]),
  });
  observedCounter(registry, {
    name: "loracast_webhooks_rejected_total",
    help: "Webhook requests rejected (signature, timestamp, replay, malformed body), by reason.",
    labelNames: ["reason"],
    read: () => [...rejected].map(([reason, n]) => [{ reason }, n]),
  });
  // Scaling signal (HPA / KEDA): 0 on a generator without an engine, which queues nothing.
  gauge(
    "loracast_generator_queue_depth",
    "Sequences (one per choice) queued for the engine's next prefill.",
    () => engine?.queued ?? 0,
  );
  if (engine === null) return;
  counter(
    "loracast_engine_sessions_created_total",
    "ONNX Runtime inference sessions created.",
    engine.sessionsCreated,
  );
  counter("loracast_engine_prefills_total", "Prefill batches run.", () => engine.stats.prefills);
  counter("loracast_engine_decode_steps_total", "Decode steps run.", () => engine.stats.decodeSteps);
  counter("loracast_engine_generated_tokens_total", "Tokens generated.", () => engine.stats.tokens);
  gauge("loracast_engine_sequences", "Sequences queued or being decoded.", () => engine.load);
  const { backend } = engine;
  observedGauge(registry, {
    name: "loracast_engine_backend_info",
    help: "1, labelled with the decoder's ORT binding, execution provider and why that binding.",
    labelNames: ["backend", "ep", "reason"],
    // The reason can carry a loader message: bounded, it is a label value.
    read: () => [[{ backend: backend.backend, ep: backend.ep, reason: backend.reason.slice(0, 200) }, 1]],
  });
  const { baseGraph } = engine;
  observedGauge(registry, {
    name: "loracast_engine_base_graph_info",
    help: "1, labelled with whether base-model requests run on the decoder graph without LoRA inputs (GENERATOR_BASE_GRAPH), and why.",
    labelNames: ["state", "reason"],
    read: () => [[{ state: baseGraph.on ? "on" : "off", reason: baseGraph.reason.slice(0, 200) }, 1]],
  });
  observedCounter(registry, {
    name: "loracast_engine_graph_steps_total",
    help: "Decoder steps (prefills and decode steps) run, by graph: lora (adapters, and the base without a base graph) or base.",
    labelNames: ["graph"],
    read: () => {
      const { lora, base } = engine.graphSteps();
      return [
        [{ graph: "lora" }, lora],
        [{ graph: "base" }, base],
      ];
    },
  });
}
