import { randomUUID, timingSafeEqual } from "node:crypto";
import { type EgressPolicy, egressFetch } from "@loracast/shared/egress";
import { type Logger, PROMETHEUS_CONTENT_TYPE, prometheusText, requestId } from "@loracast/shared/platform";
import type { AbandonedUploads, AdapterStore, ObjectStore } from "@loracast/shared/store";
import { StoreError } from "@loracast/shared/store";
import type { Outbox } from "@loracast/shared/webhooks";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { TrainerError } from "./errors.ts";
import { FLEET_DEFAULTS } from "./fleet/index.ts";
import { errorResponse } from "./http-errors.ts";
import { trainerOpenApi } from "./openapi.ts";
import type { Publisher } from "./publisher.ts";
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
    path === "/metrics" ||
    path === "/openapi.json" ||
    /^\/v1\/runs\/[^/]+\/(?:versions|events)$/.test(path) ||
    path === "/" ||
    path === "/dashboard" ||
    /^\/dashboard\/assets\/[^/]+$/.test(path)
  );
}

/**
 * The trainer's HTTP API: bearer auth (probes, versions and events excepted), body bounds, the
 * routes, and the one error handler that turns a TrainerError's code into its status
 * (http-errors.ts); a StoreError is `store_unavailable` or `internal`, anything else `internal`.
 */
export function createApp(d: AppDeps): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();
  const token = Buffer.from(d.apiToken);

  app.use("*", requestId(randomUUID));

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
  app.get("/metrics", async (c) => {
    const pending = (await d.outbox.pending()).length;
    const text = prometheusText([
      { name: "loracast_store_uploaded_bytes_total", type: "counter", value: d.objects.traffic.uploaded },
      { name: "loracast_store_blobs_repaired_total", type: "counter", value: d.store.blobsRepaired },
      {
        name: "loracast_store_records_repaired_total",
        type: "counter",
        samples: Object.entries(d.publisher.recordsRepaired).map(([record, n]) => [{ record }, n] as const),
      },
      {
        name: "loracast_store_multipart_aborted_total",
        type: "counter",
        value: d.abandonedUploads.aborted,
      },
      {
        name: "loracast_store_multipart_aborts_pending",
        type: "gauge",
        value: d.abandonedUploads.pendingCount,
      },
      { name: "loracast_webhooks_delivered_total", type: "counter", value: d.outbox.stats.delivered },
      {
        name: "loracast_webhook_failed_attempts_total",
        type: "counter",
        value: d.outbox.stats.failedAttempts,
      },
      { name: "loracast_webhooks_dead_total", type: "counter", value: d.outbox.stats.dead },
      // Deliveries whose subscriber left (a replica gone from its dns+ name, a removed subscription).
      { name: "loracast_webhooks_dropped_total", type: "counter", value: d.outbox.stats.dropped },
      { name: "loracast_webhooks_pending", type: "gauge", value: pending },
    ]);
    return c.text(text, 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });
  app.route("/", runRoutes(d.runs));
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
