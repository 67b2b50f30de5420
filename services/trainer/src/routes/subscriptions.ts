import { checkEgressUrl, type EgressPolicy, redactSecrets } from "@loracast/shared/egress";
import { type SubscriptionList, subscribeRequestSchema } from "@loracast/shared/trainer-api";
import { Hono } from "hono";
import { errorResponse } from "../http-errors.ts";
import type { SubscriptionRegistry } from "../subscriptions.ts";
import type { TrainerEnv } from "./types.ts";

/**
 * Webhook subscriptions: list, register (the URL passes the egress policy), remove. Listed and
 * returned URLs are redacted: a subscriber URL may carry credentials.
 */
export function subscriptionRoutes(registry: SubscriptionRegistry, egress: EgressPolicy): Hono<TrainerEnv> {
  const app = new Hono<TrainerEnv>();
  app.get("/v1/subscriptions", (c) => {
    const body: SubscriptionList = { data: registry.list() };
    return c.json(redactSecrets(body));
  });
  app.post("/v1/subscriptions", async (c) => {
    const parsed = subscribeRequestSchema.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return errorResponse(c, "bad_request", 'body must be {"url": "http(s)://…"}');
    const checked = checkEgressUrl(parsed.data.url, egress);
    if (!checked.ok) return errorResponse(c, "bad_request", `url: ${checked.error.message}`);
    return c.json(redactSecrets(await registry.add(parsed.data.url)), 201);
  });
  app.delete("/v1/subscriptions/:id", async (c) => {
    if (!(await registry.remove(c.req.param("id")))) {
      return errorResponse(c, "not_found", `no registered subscription ${c.req.param("id")}`);
    }
    return c.body(null, 204);
  });
  return app;
}
