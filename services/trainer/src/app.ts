import { randomUUID, timingSafeEqual } from "node:crypto";
import { type EgressPolicy, egressFetch } from "@loracast/shared/egress";
import { httpMetrics, type Logger, metricsHandler, requestId } from "@loracast/shared/platform";
import type { AbandonedUploads, AdapterStore, ObjectStore } from "@loracast/shared/store";
import { StoreError } from "@loracast/shared/store";
import type { Outbox } from "@loracast/shared/webhooks";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { TrainerError } from "./errors.ts";
import { FLEET_DEFAULTS } from "./fleet/index.ts";
import { errorResponse } from "./http-errors.ts";
import { registerTrainerState, type TrainerMetrics } from "./metrics.ts";
import { trainerOpenApi } from "./openapi.ts";
import type { Publisher } from "./publisher.ts";
import type { Readiness } from "./readiness.ts";
import type { UploadSpool } from "./routes/adapter-upload.ts";
import { adapterRoutes } from "./routes/adapters.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { fleetRoutes } from "./routes/fleet.ts";
import { runRoutes } from "./routes/runs.ts";
import { subscriptionRoutes } from "./routes/subscriptions.ts";
import type { TrainerEnv } from "./routes/types.ts";
import type { RunManager } from "./runs/run-manager.ts";
import type { SubscriptionRegistry } from "./subscriptions.ts";

/** What the trainer's HTTP API serves from. */
export interface AppDeps {
  publisher: Publisher;
  /** Null when the trainer has no base model loaded: it can publish but not train. */
  runs: RunManager | null;
  subscriptions: SubscriptionRegistry;
  /** The publisher's adapter store, for its counters (blobs repaired). */
  store: AdapterStore;
  objects: ObjectStore;
  /** Multipart uploads aborted after S3 failed mid-upload, and those still being retried. */
  abandonedUploads: AbandonedUploads;
  outbox: Outbox;
  log: Logger;
  apiToken: string;
  /** The policy subscriber URLs are checked against when registered. */
  egress: EgressPolicy;
  /** Where uploads are spooled (`TRAINER_DATA_DIR/uploads`) and the bound on each. */
  uploads: UploadSpool;
  /** This instance's metrics; `/metrics` serves its registry, and every request is timed into it. */
  metrics: TrainerMetrics;
  /** `GET /readyz`'s checks. */
  readiness: Readiness;
  /** Milliseconds between the `: ping` comments on a run's event stream (TRAINER_SSE_HEARTBEAT_S). */
  sseHeartbeatMs: number;
}

const UPLOAD_PATH = /^\/v1\/runs\/[^/]+\/adapters$/;

/** The bound on every JSON request body (run configs, subscriptions, rollbacks): 1 MiB. */
const MAX_JSON_BODY_BYTES = 1024 * 1024;

/**
 * Requests answered without the token: probes, the OpenAPI document, the version listing (signed,
 * public metadata), run events, and the dashboard's static page and assets (they hold no data).
 * Everything else needs it, reads included: run configs, subscriptions and the fleet name internal
 * endpoints.
 */
export function isPublic(method: string, path: string): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  return (
    path === "/healthz" ||
    path === "/readyz" ||
    path === "/metrics" ||
    path === "/openapi.json" ||
    /^\/v1\/runs\/[^/]+\/(?:versions|events)$/.test(path) ||
    path === "/" ||
    path === "/dashboard" ||
    /^\/dashboard\/assets\/[^/]+$/.test(path)
  );
}

/**
 * The trainer's HTTP API: request ids and latency metrics, bearer auth (probes, metrics, versions
 * and events excepted), body bounds, the
 * routes, and the one error handler that turns a TrainerError's code into its status
 * (http-errors.ts); a StoreError is `store_unavailable` or `internal`, anything else `internal`.
 */
export function createApp(d: AppDeps): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();
  const token = Buffer.from(d.apiToken);

  app.use("*", requestId(randomUUID));
  app.use("*", httpMetrics(d.metrics.registry, { log: d.log }));

  app.use("*", async (c, next) => {
    if (isPublic(c.req.method, c.req.path)) return next();
    // RFC 6750: only the `Bearer` scheme; a bare token is refused, so a proxy or client that drops
    // the scheme is noticed rather than silently relied on.
    const header = c.req.header("authorization") ?? "";
    const bearer = /^Bearer (.+)$/i.exec(header);
    if (bearer === null) {
      return errorResponse(c, "unauthorized", "Authorization: expected `Bearer <TRAINER_API_TOKEN>`");
    }
    const given = Buffer.from(bearer[1] as string);
    if (given.byteLength !== token.byteLength || !timingSafeEqual(given, token)) {
      return errorResponse(c, "unauthorized", "Authorization: the bearer token is not valid");
    }
    return next();
  });

  // JSON bodies (run configs, subscriptions, rollbacks) are small; uploads stream under their own
  // bound (routes/adapter-upload.ts), since hono's bodyLimit buffers a body without Content-Length.
  const jsonLimit = bodyLimit({
    maxSize: MAX_JSON_BODY_BYTES,
    onError: (c) => {
      // The unread rest of the body makes the connection unusable for another request.
      c.header("connection", "close");
      return errorResponse(
        c,
        "payload_too_large",
        `request bodies are limited to ${MAX_JSON_BODY_BYTES} bytes`,
      );
    },
  });
  app.use("*", (c, next) => (UPLOAD_PATH.test(c.req.path) ? next() : jsonLimit(c, next)));

  const openApi = trainerOpenApi();
  app.get("/openapi.json", (c) => c.json(openApi));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const r = await d.readiness.check();
    return r.ready ? c.json(r.body) : errorResponse(c, "not_ready", `not ready: ${r.reasons.join("; ")}`);
  });
  registerTrainerState(d.metrics.registry, {
    store: d.store,
    objects: d.objects,
    abandonedUploads: d.abandonedUploads,
    recordsRepaired: () => d.publisher.recordsRepaired,
    outbox: d.outbox,
  });
  app.get("/metrics", metricsHandler(d.metrics.registry));
  app.route("/", runRoutes(d.runs, d.sseHeartbeatMs));
  app.route("/", adapterRoutes(d.publisher, d.uploads));
  app.route("/", subscriptionRoutes(d.subscriptions, d.egress));
  app.route(
    "/",
    fleetRoutes({
      ...FLEET_DEFAULTS,
      subscriptions: () => d.subscriptions.list(),
      targets: () => d.subscriptions.targets(),
      fetch: egressFetch(d.egress),
      now: () => Date.now(),
    }),
  );
  app.route("/", dashboardRoutes());

  app.notFound((c) => errorResponse(c, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    if (e instanceof TrainerError) {
      if (e.code === "internal") d.log.error("internal error", { error: e.message, path: c.req.path });
      return errorResponse(c, e.code, e.message);
    }
    if (e instanceof StoreError) {
      d.log.error("store error", { error: e, path: c.req.path });
      return errorResponse(c, e.code === "unavailable" ? "store_unavailable" : "internal", e.message);
    }
    d.log.error("unhandled error", { error: e, stack: e.stack, path: c.req.path });
    return errorResponse(c, "internal", "internal error");
  });
  return app;
}
