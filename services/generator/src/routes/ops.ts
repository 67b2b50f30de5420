import type { Readiness } from "@loracast/shared/generator-api";
import { type Metric, PROMETHEUS_CONTENT_TYPE, prometheusText } from "@loracast/shared/platform";
import type { AdapterStore, ObjectStore } from "@loracast/shared/store";
import { Hono } from "hono";
import type { AliasRegistry } from "../aliases/index.ts";
import { errorResponse } from "../errors.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/** What the inference engine reports in /metrics. */
export interface EngineMetrics {
  sessionsCreated(): number;
  stats: { prefills: number; decodeSteps: number; tokens: number };
  load: number;
}

/** `GET /healthz`, `GET /readyz` and `GET /metrics` (Prometheus text: lifecycle, cache, aliases, engine). */
export function opsRoutes(
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
  app.get("/metrics", (c) => {
    const counter = (name: string, value: number): Metric => ({ name, type: "counter", value });
    const gauge = (name: string, value: number): Metric => ({ name, type: "gauge", value });
    const text = prometheusText([
      counter("loracast_adapter_activations_total", manager.stats.activations),
      counter("loracast_adapter_failures_total", manager.stats.failures),
      counter("loracast_webhook_events_refused_total", manager.stats.badEvents),
      counter("loracast_reconciles_total", manager.stats.reconciles),
      counter("loracast_reconcile_errors_total", manager.stats.reconcileErrors),
      counter("loracast_store_downloaded_bytes_total", objects.traffic.downloaded),
      gauge("loracast_adapter_cache_bytes", manager.cache.heldBytes()),
      gauge("loracast_adapter_cache_max_bytes", manager.cache.maxBytes),
      // What no eviction frees: active versions and what load_lora_adapter aliases hold.
      gauge("loracast_adapter_cache_unevictable_bytes", aliases.heldBytes()),
      {
        name: "loracast_lora_alias_loads_refused_total",
        type: "counter",
        samples: [...aliases.refusals].map(
          ([code, n]) => [{ reason: code === "full" ? "max_aliases" : "cache_bytes" }, n] as const,
        ),
      },
      {
        name: "loracast_active_adapter_version",
        type: "gauge",
        samples: Object.entries(manager.activeVersions()).map(([run, a]) => [{ run }, a.version] as const),
      },
      {
        name: "loracast_revoked_requests_total",
        type: "counter",
        samples: [...manager.stats.revokedRequests].flatMap(([run, n]) => [
          [{ run, outcome: "refused" }, n.refused] as const,
          [{ run, outcome: "served" }, n.served] as const,
        ]),
      },
      gauge("loracast_manifest_signatures_required", store.verifiesSignatures ? 1 : 0),
      {
        // Store records refused on read, by kind and code (STORE_REFUSAL_CODES in shared/manifest).
        name: "loracast_store_records_refused_total",
        type: "counter",
        samples: store.refusals
          .counters()
          .map((r) => [{ record: r.record, reason: r.code }, r.count] as const),
      },
      {
        // 1 per run and finding while its store state is staler than its newest signed head.
        name: "loracast_store_stale_state",
        type: "gauge",
        samples: manager.heads.all().map((f) => [{ run: f.run, finding: f.finding }, 1] as const),
      },
      {
        name: "loracast_webhooks_rejected_total",
        type: "counter",
        samples: [...rejected].map(([reason, n]) => [{ reason }, n] as const),
      },
      ...(engine === null
        ? []
        : [
            counter("loracast_engine_sessions_created_total", engine.sessionsCreated()),
            counter("loracast_engine_prefills_total", engine.stats.prefills),
            counter("loracast_engine_decode_steps_total", engine.stats.decodeSteps),
            counter("loracast_engine_generated_tokens_total", engine.stats.tokens),
            gauge("loracast_engine_sequences", engine.load),
          ]),
    ]);
    return c.text(text, 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });
  return app;
}
