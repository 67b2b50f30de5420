/** Outcome of an operation whose failure is expected (bad input, not found), as opposed to a bug. */
export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

/** The success side of a `Result`. */
export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
/** The failure side of a `Result`. */
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });
