/**
 * The HTTP edge of the trainer's error vocabulary (errors.ts): the status of each code and the one
 * error envelope. Only the app's `onError`, its middleware and the routes answer through here.
 */
import { redactText } from "@loracast/shared/egress";
import type { TrainerErrorBody } from "@loracast/shared/trainer-api";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { TrainerErrorCode } from "./errors.ts";

/**
 * The status each code is answered with. The run-failure codes (`reward_failed`,
 * `generators_unavailable`, `non_finite`) end runs, not requests; should one reach a request it
 * is the server's failure.
 */
export const STATUS: Record<TrainerErrorCode, ContentfulStatusCode> = {
  bad_request: 400,
  invalid_config: 400,
  invalid_adapter: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  store_unavailable: 503,
  not_ready: 503,
  reward_failed: 502,
  generators_unavailable: 503,
  non_finite: 500,
  internal: 500,
};

/**
 * The one error envelope (`trainerErrorBodySchema`): `{error: {code, message, requestId}}` with the code's status. The
 * message is redacted (messages may echo a configured URL, credentials included).
 */
export function errorResponse(c: Context, code: TrainerErrorCode, message: string): Response {
  const requestId = c.get("requestId") as string | undefined;
  const body: TrainerErrorBody = {
    error: { code, message: redactText(message), requestId: requestId ?? null },
  };
  return c.json(body, STATUS[code]);
}
