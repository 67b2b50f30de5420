import { randomUUID } from "node:crypto";
import { httpMetrics, type Logger, requestId } from "@loracast/shared/platform";
import type { AdapterStore, ObjectStore } from "@loracast/shared/store";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AliasRegistry } from "./aliases/index.ts";
import { errorResponse } from "./errors.ts";
import type { InferenceService } from "./inference/inference-service.ts";
import type { AdapterManager } from "./lifecycle/index.ts";
import type { GeneratorMetrics } from "./metrics.ts";
import { generatorOpenApi } from "./openapi.ts";
import { adapterRoutes } from "./routes/adapters.ts";
import { generateRoutes } from "./routes/generate.ts";
import { type LoraAdminDeps, loraAdminRoutes } from "./routes/lora-admin.ts";
import { type EngineMetrics, opsRoutes } from "./routes/ops.ts";
import type { GeneratorEnv } from "./routes/types.ts";
import { type WebhookDeps, webhookRoutes } from "./routes/webhooks.ts";

/** What the generator's HTTP app serves from: the lifecycle, the aliases, the stores and the engine. */
export interface AppDeps extends Omit<WebhookDeps, "rejected"> {
  manager: AdapterManager;
  /** Names loaded through `load_lora_adapter`, shared with the inference service. */
  aliases: AliasRegistry;
  /** The admin API's settings: token, bind address, store location, local directories. */
  admin: Pick<LoraAdminDeps, "adminToken" | "host" | "store" | "local">;
  objects: ObjectStore;
  /** The adapter store, for its counts of refused records. */
  store: AdapterStore;
  log: Logger;
  baseName: string;
  /** The model engine; null runs the adapter lifecycle only (verification without serving). */
  inference: { service: InferenceService; metrics: EngineMetrics } | null;
  /** Largest completions / chat request body, in bytes (`GENERATOR_MAX_REQUEST_BYTES`). */
  maxRequestBytes: number;
  /** Milliseconds between the `: ping` comments on a streamed completion (GENERATOR_SSE_HEARTBEAT_S). */
  sseHeartbeatMs: number;
  /** This instance's metrics; `/metrics` serves its registry, and every request is timed into it. */
  metrics: GeneratorMetrics;
}

/**
 * Webhook events and admin calls are small JSON objects by contract (a manifest's key and sha256, a
 * name and a path), so their bound is fixed well above any honest one.
 */
const SMALL_BODY_BYTES = 64 * 1024;

/**
 * The generator's Hono app: serving (`/v1/completions`, `/v1/chat/completions`, `/v1/models`), the
 * lifecycle (`/v1/webhooks/adapters`, `/v1/adapters`), the admin API, `/healthz`, `/readyz`,
 * `/metrics` and `/openapi.json` (openapi.ts), with request ids, body bounds and the OpenAI error envelope.
 */
export function createApp(d: AppDeps): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  const rejected = new Map<string, number>();
  app.use("*", requestId(randomUUID));
  app.use("*", httpMetrics(d.metrics.registry, { log: d.log }));
  // Bounded while the body streams in (hono counts the bytes as it reads, and checks Content-Length
  // first), so an oversize request costs neither memory nor a parse.
  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: (c) =>
        errorResponse(
          c,
          "payload_too_large",
          `request bodies on ${c.req.path} are limited to ${maxSize} bytes`,
        ),
    });
  app.use("/v1/completions", limit(d.maxRequestBytes));
  app.use("/v1/chat/completions", limit(d.maxRequestBytes));
  for (const path of ["/v1/webhooks/*", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"])
    app.use(path, limit(SMALL_BODY_BYTES));
  const openApi = generatorOpenApi();
  app.get("/openapi.json", (c) => c.json(openApi));
  app.route("/", webhookRoutes({ ...d, rejected }));
  app.route(
    "/",
    adapterRoutes(
      d.manager,
      d.aliases,
      d.baseName,
      d.clock.now(),
      d.inference?.service.contextLength ?? null,
      d.store.refusals,
    ),
  );
  app.route("/", generateRoutes(d.inference?.service ?? null, d.clock, d.sseHeartbeatMs));
  app.route(
    "/",
    loraAdminRoutes({
      ...d.admin,
      manager: d.manager,
      aliases: d.aliases,
      baseName: d.baseName,
      clock: d.clock,
      log: d.log,
    }),
  );
  app.route(
    "/",
    opsRoutes(
      d.metrics.registry,
      d.manager,
      d.aliases,
      d.objects,
      d.store,
      rejected,
      d.inference?.metrics ?? null,
    ),
  );
  app.notFound((c) => errorResponse(c, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    d.log.error("unhandled error", { error: e, stack: e.stack, path: c.req.path });
    return errorResponse(c, "internal", "internal error");
  });
  return app;
}
