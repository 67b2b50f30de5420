/**
 * The trainer's one error vocabulary. Code throughout the trainer (routes, publisher, run planning,
 * the run loop) signals with these codes; only the HTTP edge (http-errors.ts, used by the app's
 * `onError`) turns a code into a status. A run's failure is no HTTP answer: its message becomes
 * the run's `failed` status event.
 */

/** Every error code of the trainer. */
export type TrainerErrorCode =
  /** A request the API cannot read (not JSON, a bad header). */
  | "bad_request"
  /** A run config that fails a check (schema, rewards, LoRA targets, dataset lines, URLs). */
  | "invalid_config"
  /** An uploaded PEFT adapter that does not fit the base or the format. */
  | "invalid_adapter"
  /** No or a wrong bearer token. */
  | "unauthorized"
  /** No such run, version or route. */
  | "not_found"
  /** The state forbids it: a run that exists or is running, a rollback to a revoked version. */
  | "conflict"
  /** A body over its bound. */
  | "payload_too_large"
  /** The object store cannot be reached. */
  | "store_unavailable"
  /** An HTTP reward function failed after its retries (a run's failure). */
  | "reward_failed"
  /** The generators could not serve a run's rollouts after the retries (a run's failure). */
  | "generators_unavailable"
  /** maxNonFiniteSteps consecutive steps went non-finite (a run's failure). */
  | "non_finite"
  /** A broken invariant: a bug, or a peer that broke its contract. */
  | "internal";

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
