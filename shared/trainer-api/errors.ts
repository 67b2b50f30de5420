/** The trainer's error vocabulary and envelope, `{error: {code, message, requestId}}`. */
import { z } from "zod";

/**
 * The trainer's one error vocabulary: what its code signals with, and every `error.code` its API
 * answers with. Only the trainer's HTTP edge turns a code into a status.
 * - `bad_request`: a request the API cannot read (not JSON, a bad header);
 * - `invalid_config`: a run config that fails a check (schema, rewards, LoRA targets, dataset lines, URLs);
 * - `invalid_adapter`: an uploaded PEFT adapter that does not fit the base or the format;
 * - `unauthorized`: no or a wrong bearer token;
 * - `not_found`: no such run, version or route;
 * - `conflict`: the state forbids it (a run that exists or is running, a rollback to a revoked version);
 * - `payload_too_large`: a body over its bound;
 * - `store_unavailable`: the object store cannot be reached;
 * - `not_ready`: `GET /readyz` found a check failing (the message names each);
 * - `reward_failed`: an HTTP reward function failed after its retries (a run's failure);
 * - `generators_unavailable`: the generators could not serve a run's rollouts after the retries (a run's failure);
 * - `non_finite`: maxNonFiniteSteps consecutive steps went non-finite (a run's failure);
 * - `internal`: a broken invariant: a bug, or a peer that broke its contract.
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
  "not_ready",
  "reward_failed",
  "generators_unavailable",
  "non_finite",
  "internal",
] as const;
const trainerErrorCodeSchema = z.enum(TRAINER_ERROR_CODES);
/** The shape {@link trainerErrorCodeSchema} parses, as zod infers it. */
export type TrainerErrorCode = z.infer<typeof trainerErrorCodeSchema>;

/** The body of every trainer error response; the message is redacted (no credentials in URLs). */
export const trainerErrorBodySchema = z.object({
  error: z.object({
    code: trainerErrorCodeSchema,
    message: z.string(),
    requestId: z.string().nullable().describe("The request's id, as logged and sent in `x-request-id`"),
  }),
});
/** The shape {@link trainerErrorBodySchema} parses, as zod infers it. */
export type TrainerErrorBody = z.infer<typeof trainerErrorBodySchema>;
