import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error code the generator API answers with. */
export type GeneratorErrorCode = "bad_request" | "unauthorized" | "not_found" | "not_ready" | "internal";

const STATUS: Record<GeneratorErrorCode, ContentfulStatusCode> = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  not_ready: 503,
  internal: 500,
};

/** The one error envelope: `{error: {code, message, requestId}}`. */
export function errorResponse(c: Context, code: GeneratorErrorCode, message: string): Response {
  const requestId = c.get("requestId") as string | undefined;
  return c.json({ error: { code, message, requestId: requestId ?? null } }, STATUS[code]);
}
