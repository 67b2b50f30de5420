import type { ObjectStore } from "@loracast/shared/store";
import { Hono } from "hono";
import { errorResponse } from "../errors.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/** What the inference engine reports in /metrics. */
export interface EngineMetrics {
  sessionsCreated(): number;
  stats: { prefills: number; decodeSteps: number; tokens: number };
  load: number;
}

export function opsRoutes(
  manager: AdapterManager,
  objects: ObjectStore,
  rejected: Map<string, number>,
  engine: EngineMetrics | null,
): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) =>
    manager.ready
      ? c.json({ status: "ready", active: manager.activeVersions() })
      : errorResponse(c, "not_ready", "the latest adapter versions have not been resolved yet"),
  );
  app.get("/metrics", (c) => {
    const lines = [
      "# TYPE loracast_adapter_activations_total counter",
      `loracast_adapter_activations_total ${manager.stats.activations}`,
      "# TYPE loracast_adapter_failures_total counter",
      `loracast_adapter_failures_total ${manager.stats.failures}`,
      "# TYPE loracast_reconciles_total counter",
      `loracast_reconciles_total ${manager.stats.reconciles}`,
      "# TYPE loracast_reconcile_errors_total counter",
      `loracast_reconcile_errors_total ${manager.stats.reconcileErrors}`,
      "# TYPE loracast_store_downloaded_bytes_total counter",
      `loracast_store_downloaded_bytes_total ${objects.traffic.downloaded}`,
      "# TYPE loracast_adapter_cache_bytes gauge",
      `loracast_adapter_cache_bytes ${manager.cache.heldBytes()}`,
      "# TYPE loracast_active_adapter_version gauge",
      ...Object.entries(manager.activeVersions()).map(
        ([run, a]) => `loracast_active_adapter_version{run="${run}"} ${a.version}`,
      ),
      "# TYPE loracast_webhooks_rejected_total counter",
      ...[...rejected].map(([reason, n]) => `loracast_webhooks_rejected_total{reason="${reason}"} ${n}`),
      ...(engine === null
        ? []
        : [
            "# TYPE loracast_engine_sessions_created_total counter",
            `loracast_engine_sessions_created_total ${engine.sessionsCreated()}`,
            "# TYPE loracast_engine_prefills_total counter",
            `loracast_engine_prefills_total ${engine.stats.prefills}`,
            "# TYPE loracast_engine_decode_steps_total counter",
            `loracast_engine_decode_steps_total ${engine.stats.decodeSteps}`,
            "# TYPE loracast_engine_generated_tokens_total counter",
            `loracast_engine_generated_tokens_total ${engine.stats.tokens}`,
            "# TYPE loracast_engine_sequences gauge",
            `loracast_engine_sequences ${engine.load}`,
          ]),
    ];
    return c.text(`${lines.join("\n")}\n`, 200, { "content-type": "text/plain; version=0.0.4" });
  });
  return app;
}
