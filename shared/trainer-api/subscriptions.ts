/**
 * Webhook subscriptions over the trainer's API: `GET /v1/subscriptions`, `POST /v1/subscriptions`
 * (201), `DELETE /v1/subscriptions/:id` (204). URLs are shown redacted (they may carry credentials).
 */
import { z } from "zod";

/** One subscriber of the trainer's Standard Webhooks. */
export const subscriptionSchema = z.object({
  id: z.string().describe("`static-<i>` for WEBHOOK_SUBSCRIBERS entries, `sub_<uuid>` for registered ones"),
  url: z.string(),
  source: z
    .enum(["static", "api"])
    .describe("`static` ones come from WEBHOOK_SUBSCRIBERS and cannot be removed over the API"),
});
/** The shape {@link subscriptionSchema} parses, as zod infers it. */
export type Subscription = z.infer<typeof subscriptionSchema>;

/** `GET /v1/subscriptions`. */
export const subscriptionListSchema = z.object({ data: z.array(subscriptionSchema) });
/** The shape {@link subscriptionListSchema} parses, as zod infers it. */
export type SubscriptionList = z.infer<typeof subscriptionListSchema>;

/** `POST /v1/subscriptions`: an http(s) URL that passes the trainer's egress policy. */
export const subscribeRequestSchema = z.object({ url: z.string() });
/**
 * The shape {@link subscribeRequestSchema} parses, as zod infers it.
 * Part of the wire contract for clients outside this repository; nothing inside imports it yet.
 * @public
 */
export type SubscribeRequest = z.infer<typeof subscribeRequestSchema>;
