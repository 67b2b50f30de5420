import { redactText } from "@loracast/shared/egress";
import type { TrainerErrorBody, TrainerErrorCode } from "@loracast/shared/trainer-api";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export type { TrainerErrorCode };

/** The HTTP status of each error code: the one place codes meet HTTP. */
const STATUS: Record<TrainerErrorCode, ContentfulStatusCode> = {
  bad_request: 400,
  invalid_config: 400,
  invalid_adapter: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  store_unavailable: 503,
  reward_failed: 502,
  generators_unavailable: 503,
  internal: 500,
};

export class TrainerError extends Error {
  override readonly name = "TrainerError";
  constructor(
    readonly code: TrainerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The one error envelope (`trainerErrorBodySchema`): `{error: {code, message, requestId}}`. The message is redacted (messages
 * may echo a configured URL, credentials included).
 */
export function errorResponse(c: Context, code: TrainerErrorCode, message: string): Response {
  const requestId = c.get("requestId") as string | undefined;
  const body: TrainerErrorBody = {
    error: { code, message: redactText(message), requestId: requestId ?? null },
  };
  return c.json(body, STATUS[code]);
}
