import { createHmac, timingSafeEqual } from "node:crypto";
import type { Clock } from "../platform/index.ts";
import { err, type Failure, ok, type Result } from "../result/index.ts";

/**
 * Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over `id.timestamp.body`, keyed with the
 * base64 secret after its `whsec_` prefix, sent as `v1,<base64>` in `webhook-signature`.
 */
export interface WebhookHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

const PREFIX = "whsec_";

function secretBytes(secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, "base64");
}

/** True when `secret` is a `whsec_` secret with at least 24 bytes of key. */
export function isValidSecret(secret: string): boolean {
  return secret.startsWith(PREFIX) && secretBytes(secret).byteLength >= 24;
}

function sign(secret: string, id: string, timestamp: string, body: string): string {
  return createHmac("sha256", secretBytes(secret)).update(`${id}.${timestamp}.${body}`).digest("base64");
}

/**
 * Signs one delivery (Standard Webhooks): the three headers to send with `body`, the timestamp in
 * Unix seconds from `clock`. `secret` is a `whsec_` secret (see `isValidSecret`).
 */
export function signWebhook(params: {
  secret: string;
  id: string;
  clock: Clock;
  body: string;
}): WebhookHeaders {
  const timestamp = String(Math.floor(params.clock.now() / 1000));
  return {
    "webhook-id": params.id,
    "webhook-timestamp": timestamp,
    "webhook-signature": `v1,${sign(params.secret, params.id, timestamp, params.body)}`,
  };
}

/** What `verifyWebhook` checks: the request's headers and raw body against every accepted secret. */
export interface VerifyParams {
  /** Every secret currently accepted; more than one during rotation. */
  secrets: readonly string[];
  headers: { get(name: string): string | null | undefined };
  body: string;
  clock: Clock;
  /** Allowed distance between the timestamp and now. @default 300 */
  toleranceSeconds?: number;
}

/** Verifies signature and timestamp. Replays are the caller's to refuse (see ReplayCache). */
export function verifyWebhook(params: VerifyParams): Result<{ id: string; timestamp: number }, Failure> {
  const id = params.headers.get("webhook-id");
  const ts = params.headers.get("webhook-timestamp");
  const sigHeader = params.headers.get("webhook-signature");
  if (!id || !ts || !sigHeader)
    return err({ message: "missing webhook-id, webhook-timestamp or webhook-signature" });
  if (!/^\d{1,12}$/.test(ts)) return err({ message: "webhook-timestamp is not a Unix time in seconds" });
  const timestamp = Number(ts);
  const tolerance = params.toleranceSeconds ?? 300;
  const skew = timestamp - Math.floor(params.clock.now() / 1000);
  if (skew < -tolerance)
    return err({ message: `webhook-timestamp is ${-skew} s old, more than the ${tolerance} s allowed` });
  if (skew > tolerance) return err({ message: `webhook-timestamp is ${skew} s in the future` });
  const given = sigHeader
    .split(" ")
    .filter((s) => s.startsWith("v1,"))
    .map((s) => Buffer.from(s.slice(3), "base64"));
  for (const secret of params.secrets) {
    const expected = Buffer.from(sign(secret, id, ts, params.body), "base64");
    if (given.some((g) => g.byteLength === expected.byteLength && timingSafeEqual(g, expected))) {
      return ok({ id, timestamp });
    }
  }
  return err({ message: "no webhook-signature matches" });
}
