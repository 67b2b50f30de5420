import { randomUUID } from "node:crypto";
import { type Logger, requestId } from "@loracast/shared/platform";
import type { AdapterStore, ObjectStore } from "@loracast/shared/store";
import { Hono } from "hono";
import { errorResponse } from "./errors.ts";
import type { InferenceService } from "./inference/inference-service.ts";
import type { AdapterManager } from "./lifecycle/index.ts";
import { adapterRoutes } from "./routes/adapters.ts";
import { generateRoutes } from "./routes/generate.ts";
import { loraAdminRoutes } from "./routes/lora-admin.ts";
import { type EngineMetrics, opsRoutes } from "./routes/ops.ts";
import type { GeneratorEnv } from "./routes/types.ts";
import { type WebhookDeps, webhookRoutes } from "./routes/webhooks.ts";

export interface AppDeps extends Omit<WebhookDeps, "rejected"> {
  manager: AdapterManager;
  objects: ObjectStore;
  /** The adapter store, for its counts of refused records. */
  store: AdapterStore;
  log: Logger;
  baseName: string;
  /** The model engine; null runs the adapter lifecycle only (verification without serving). */
  inference: { service: InferenceService; metrics: EngineMetrics } | null;
}

export function createApp(d: AppDeps): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  const rejected = new Map<string, number>();
  app.use("*", requestId(randomUUID));
  app.route("/", webhookRoutes({ ...d, rejected }));
  app.route("/", adapterRoutes(d.manager, d.baseName, Math.floor(d.clock.now() / 1000)));
  app.route("/", generateRoutes(d.inference?.service ?? null, d.clock));
  app.route("/", loraAdminRoutes(d.manager));
  app.route("/", opsRoutes(d.manager, d.objects, d.store, rejected, d.inference?.metrics ?? null));
  app.notFound((c) => errorResponse(c, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    d.log.error("unhandled error", { error: e, stack: e.stack, path: c.req.path });
    return errorResponse(c, "internal", "internal error");
  });
  return app;
}
