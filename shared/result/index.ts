/** Outcome of an operation whose failure is expected (bad input, not found), as opposed to a bug. */
export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

/**
 * The one shape of a `Result`'s error: an object whose `message` says what failed and where (the
 * field, the tensor, the key), as an `Error`'s does, so that any failure can be logged, wrapped or
 * answered alike. A failure that callers branch on carries a `code`, a closed union of string
 * literals (`SafetensorsError.code`, `StoreStartupFailure.code`, `SetRefusal.code`); context (the
 * field, the tensor, the variable) sits beside it. Domain error classes (`extends Error`) fit this
 * shape; a bare string, a `reason` field or a `kind` discriminant does not. Some older errors still
 * have those shapes (listed in docs/architecture.md, "result"): convert one when you touch it.
 */
export interface Failure {
  readonly message: string;
  readonly code?: string;
}

/** The success side of a `Result`. */
export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
/** The failure side of a `Result`. */
export const err = <E>(error: E): { ok: false; error: E } => ({ ok: false, error });
