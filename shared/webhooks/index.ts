/** Standard Webhooks signing and verification, a replay cache, and a durable delivery outbox. */
export { type Delivery, Outbox, type OutboxOptions } from "./outbox.ts";
export { ReplayCache } from "./replay-cache.ts";
export {
  isValidSecret,
  signWebhook,
  type VerifyParams,
  verifyWebhook,
  type WebhookHeaders,
} from "./signing.ts";
