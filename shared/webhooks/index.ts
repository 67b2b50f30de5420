/** Standard Webhooks signing and verification, a replay cache, and a durable delivery outbox. */
export { type Delivery, type DeliveryTarget, Outbox } from "./outbox.ts";
export { ReplayCache } from "./replay-cache.ts";
export {
  isValidSecret,
  signWebhook,
  verifyWebhook,
} from "./signing.ts";
