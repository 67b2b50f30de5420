/** The trainer's readiness answer (`GET /readyz`). */
import { z } from "zod";

/**
 * `GET /readyz` when the trainer is ready (200): the object store answered a listing, the webhook
 * outbox is loaded (pending deliveries from earlier processes are being sent), and the base model is
 * loaded or none is configured (then the trainer publishes but does not train). When any check fails
 * the answer is 503 with the error envelope, code `not_ready`, its message naming every failed check.
 */
export const trainerReadinessSchema = z.object({
  status: z.literal("ready"),
  checks: z.object({
    store: z.literal("ok"),
    outbox: z.literal("ok"),
    model: z.enum(["loaded", "not_configured"]),
  }),
});
/** The shape {@link trainerReadinessSchema} parses, as zod infers it. */
export type TrainerReadiness = z.infer<typeof trainerReadinessSchema>;
