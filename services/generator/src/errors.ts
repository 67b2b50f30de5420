import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error code the generator API answers with. */
export type GeneratorErrorCode =
  | "bad_request"
  /** A known OpenAI or vLLM parameter this server does not implement (OpenAI's code for it). */
  | "unsupported_parameter"
  | "context_length_exceeded"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "model_not_found"
  | "adapter_failed"
  | "adapter_revoked"
  /** A `load_lora_adapter` whose weights would take what aliases pin past CACHE_MAX_MB (409). */
  | "adapter_cache_full"
  /** A run held until its store is repaired (503): the store's fault, not the request's; retry later. */
  | "adapter_held"
  /** A request body over the route's bound (413), refused while it streams in. */
  | "payload_too_large"
  | "not_ready"
  | "engine_unavailable"
  | "internal";

const STATUS: Record<GeneratorErrorCode, ContentfulStatusCode> = {
  bad_request: 400,
  unsupported_parameter: 400,
  context_length_exceeded: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  model_not_found: 404,
  adapter_failed: 422,
  // Gone: the version existed and was withdrawn on purpose, for good (rollback records are immutable
  // and only add revocations), so a client must not retry it; 404 would read as "not published yet".
  adapter_revoked: 410,
  // Conflict: the load is valid, but clashes with what is loaded now; unloading an alias resolves it.
  adapter_cache_full: 409,
  payload_too_large: 413,
  // Service Unavailable: the name is valid and its run exists, but the store may hide a revocation
  // (HeadWatch.held), so nothing of the run is served until an operator or the trainer repairs it.
  adapter_held: 503,
  not_ready: 503,
  engine_unavailable: 503,
  internal: 500,
};

/**
 * The one error envelope: `{error: {code, message, type, param, requestId}}`. `type` and `param`
 * are there so that OpenAI clients read our errors as they read OpenAI's.
 */
export function errorResponse(
  c: Context,
  code: GeneratorErrorCode,
  message: string,
  param: string | null = null,
): Response {
  const requestId = c.get("requestId") as string | undefined;
  const status = STATUS[code];
  const type =
    status >= 500
      ? "server_error"
      : status === 401
        ? "authentication_error"
        : status === 403
          ? "permission_error"
          : "invalid_request_error";
  return c.json({ error: { code, message, type, param, requestId: requestId ?? null } }, status);
}

/** An expected API failure, carried up to the route as a value. */
export interface ApiError {
  code: GeneratorErrorCode;
  message: string;
  param?: string;
}
