/**
 * The trainer's one error vocabulary. Code throughout the trainer (routes, publisher, run planning,
 * the run loop) signals with these codes; only the HTTP edge (http-errors.ts, used by the app's
 * `onError`) turns a code into a status. A run's failure is no HTTP answer: its message becomes
 * the run's `failed` status event.
 */

import type { TrainerErrorCode } from "@loracast/shared/trainer-api";

/** Every error code of the trainer: `TRAINER_ERROR_CODES` in `shared/trainer-api`, where each is described. */
export type { TrainerErrorCode };

/** A trainer error: a code from the vocabulary above and a message that says where. */
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
