/**
 * Who may call `load_lora_adapter` / `unload_lora_adapter`. They change what a public model name
 * serves, so they are never silently open: with GENERATOR_ADMIN_TOKEN set they need
 * `Authorization: Bearer <token>`; without one they are enabled only when the generator listens on a
 * loopback address (the local stack), and answer 403 with how to enable them otherwise.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";

/** The answer of the policy for one request. */
export type AdminDecision = { allowed: true } | { allowed: false; status: 401 | 403; message: string };

/** True for `localhost`, 127.0.0.0/8, `::1` and IPv4-mapped loopback (`::ffff:127.x.x.x`). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || /^::ffff:127\./.test(h);
  return false;
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/**
 * Decides one admin request. `token` is GENERATOR_ADMIN_TOKEN (undefined when unset), `host` is
 * GENERATOR_HOST, `authorization` the request's header. Tokens are compared as sha256 digests with
 * `timingSafeEqual`, so neither their content nor their length leaks through timing.
 */
export function decideAdmin(
  token: string | undefined,
  host: string,
  authorization: string | undefined,
): AdminDecision {
  if (token === undefined) {
    if (isLoopbackHost(host)) return { allowed: true };
    return {
      allowed: false,
      status: 403,
      message: `the LoRA admin API is disabled: this generator listens on ${host}, not a loopback address, and GENERATOR_ADMIN_TOKEN is not set; set it to enable load_lora_adapter and unload_lora_adapter with Authorization: Bearer <token>`,
    };
  }
  const m = /^Bearer (.+)$/i.exec(authorization ?? "");
  if (m === null)
    return { allowed: false, status: 401, message: "the LoRA admin API needs Authorization: Bearer <token>" };
  if (!timingSafeEqual(digest(m[1] as string), digest(token)))
    return { allowed: false, status: 403, message: "the bearer token is not this generator's admin token" };
  return { allowed: true };
}
