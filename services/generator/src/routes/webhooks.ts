import type { WebhookAccepted } from "@loracast/shared/generator-api";
import { adapterEventSchema } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import { type ReplayCache, verifyWebhook } from "@loracast/shared/webhooks";
import { Hono } from "hono";
import { errorResponse } from "../errors.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import type { GeneratorEnv } from "./types.ts";

/**
 * What the webhook route verifies with (the accepted secrets, the timestamp tolerance in seconds,
 * the replay cache) and whom it tells: the lifecycle, and `rejected` counts by reason for /metrics.
 */
export interface WebhookDeps {
  manager: AdapterManager;
  secrets: readonly string[];
  toleranceSeconds: number;
  replays: ReplayCache;
  clock: Clock;
  log: Logger;
  rejected: Map<string, number>;
}

/** Verifies, answers 202 at once, and leaves the pull to the background. */
export function webhookRoutes(d: WebhookDeps): Hono<GeneratorEnv> {
  const app = new Hono<GeneratorEnv>();
  const reject = (reason: string, kind: string) => {
    d.rejected.set(kind, (d.rejected.get(kind) ?? 0) + 1);
    d.log.warn("webhook rejected", { reason });
  };
  app.post("/v1/webhooks/adapters", async (c) => {
    const body = await c.req.text();
    const verified = verifyWebhook({
      secrets: d.secrets,
      headers: { get: (n) => c.req.header(n) },
      body,
      clock: d.clock,
      toleranceSeconds: d.toleranceSeconds,
    });
    if (!verified.ok) {
      reject(verified.error.message, "signature");
      return errorResponse(c, "unauthorized", verified.error.message);
    }
    if (!d.replays.remember(verified.value.id)) {
      reject(`webhook-id ${verified.value.id} was already received`, "replay");
      return errorResponse(c, "unauthorized", `webhook-id ${verified.value.id} was already received`);
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return errorResponse(c, "bad_request", "body is not JSON");
    }
    const event = adapterEventSchema.safeParse(json);
    if (!event.success) {
      const i = event.error.issues[0];
      return errorResponse(c, "bad_request", `event ${i?.path.join(".")}: ${i?.message}`);
    }
    const accepted = d.manager.follows(event.data.run);
    d.log.info("webhook accepted", {
      type: event.data.type,
      run: event.data.run,
      version: event.data.version,
      followed: accepted,
    });
    if (accepted) {
      void d.manager
        .handleEvent(event.data)
        .catch((e: unknown) => d.log.error("event handling failed", { error: e }));
    }
    const answer: WebhookAccepted = { accepted, id: verified.value.id };
    return c.json(answer, 202);
  });
  return app;
}
