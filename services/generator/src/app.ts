import { randomUUID } from "node:crypto";
import { type Logger, requestId } from "@loracast/shared/platform";
import type { ObjectStore } from "@loracast/shared/store";
import { Hono } from "hono";
import { errorResponse } from "./errors.ts";
import type { AdapterManager } from "./lifecycle/index.ts";
import { adapterRoutes } from "./routes/adapters.ts";
import { opsRoutes } from "./routes/ops.ts";
import type { GeneratorEnv } from "./routes/types.ts";
import { type WebhookDeps, webhookRoutes } from "./routes/webhooks.ts";

export interface AppDeps extends Omit<WebhookDeps, "rejected"> {
  manager: AdapterManager;
  objects: ObjectStore;
  log: Logger;
  baseName: string;
}

export function createApp(d: AppDeps): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  const rejected = new Map<string, number>();
  app.use("*", requestId(randomUUID));
  app.route("/", webhookRoutes({ ...d, rejected }));
  app.route("/", adapterRoutes(d.manager, d.baseName, Math.floor(d.clock.now() / 1000)));
  app.route("/", opsRoutes(d.manager, d.objects, rejected));
  app.notFound((c) => errorResponse(c, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    d.log.error("unhandled error", { error: e, stack: e.stack, path: c.req.path });
    return errorResponse(c, "internal", "internal error");
  });
  return app;
}
