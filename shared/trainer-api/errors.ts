/** The trainer's error vocabulary and envelope, `{error: {code, message, requestId}}`. */
import { z } from "zod";

/**
 * Every `error.code` the trainer answers with; the HTTP status of each is chosen at the edge
 * (`services/trainer/src/errors.ts`).
 */
export const TRAINER_ERROR_CODES = [
  "bad_request",
  "invalid_config",
  "invalid_adapter",
  "unauthorized",
  "not_found",
  "conflict",
  "payload_too_large",
  "store_unavailable",
  "reward_failed",
  "generators_unavailable",
  "internal",
] as const;
export const trainerErrorCodeSchema = z.enum(TRAINER_ERROR_CODES);
export type TrainerErrorCode = z.infer<typeof trainerErrorCodeSchema>;

/** The body of every trainer error response; the message is redacted (no credentials in URLs). */
export const trainerErrorBodySchema = z.object({
  error: z.object({
    code: trainerErrorCodeSchema,
    message: z.string(),
    requestId: z.string().nullable().describe("The request's id, as logged and sent in `x-request-id`"),
  }),
});
export type TrainerErrorBody = z.infer<typeof trainerErrorBodySchema>;
