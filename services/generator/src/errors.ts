import type { GeneratorErrorBody, GeneratorErrorCode } from "@loracast/shared/generator-api";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export type { GeneratorErrorCode };

/** The HTTP status of each error code: the one place codes meet HTTP. */
export const STATUS: Record<GeneratorErrorCode, ContentfulStatusCode> = {
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
 * The one error envelope (`generatorErrorBodySchema`): `{error: {code, message, type, param, requestId}}`. `type` and `param`
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
  const body: GeneratorErrorBody = { error: { code, message, type, param, requestId: requestId ?? null } };
  return c.json(body, status);
}

/** An expected API failure, carried up to the route as a value. */
export interface ApiError {
  code: GeneratorErrorCode;
  message: string;
  param?: string;
}
