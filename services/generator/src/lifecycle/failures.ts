/**
 * When a failed version is tried again. A version failed for what it holds (a bad manifest, weights
 * that do not verify) stays failed for good: versions are immutable. One failed for what the store
 * holds now (a missing or corrupt blob, a refused signature) may heal when the store is repaired or a
 * publish rewrites the blob, so it is retried with backoff: 2 s, doubling, at most 5 minutes.
 */
import type { ManagerDeps, VersionRecord } from "./types.ts";

const RETRY_BASE_MS = 2000;
const RETRY_MAX_MS = 5 * 60_000;
/**
 * The longest wait before a refused manifest is read again while its bytes stay the same: a refused
 * signature is no transient failure, but an operator may restore the genuine object at any time.
 */
const REFUSED_MAX_MS = 30 * 60_000;

/** True for a failed version that stays failed for now (`now` in ms): for good, or until its retry is due. */
export function settledFailure(record: VersionRecord | undefined, now: number): boolean {
  if (record?.state !== "failed") return false;
  return record.retry === null || record.retry.at > now;
}

/**
 * Marks `record` failed with `reason` at `now` (ms), dropping its weights, and schedules its retry
 * for a `store` failure. Returns the delay until that retry in ms, or null when it failed for good.
 */
export function markFailed(
  record: VersionRecord,
  reason: string,
  kind: "version" | "store",
  now: number,
): number | null {
  record.state = "failed";
  record.adapter = null;
  if (kind === "version") {
    record.retry = null;
    record.reason = reason;
    return null;
  }
  const failures = (record.retry?.failures ?? 0) + 1;
  const retryInMs = Math.min(RETRY_BASE_MS * 2 ** (failures - 1), RETRY_MAX_MS);
  record.retry = { failures, at: now + retryInMs };
  record.reason = `${reason} (retried in ${Math.round(retryInMs / 1000)} s)`;
  return retryInMs;
}

/**
 * Schedules the next read of a version whose manifest the store still holds exactly as refused
 * (`record.refusal`): nothing new to judge, so nothing is logged or counted, and the wait keeps
 * doubling past the usual bound, up to 30 minutes. Returns the delay in ms.
 */
export function deferRefused(record: VersionRecord, refusal: string, now: number): number {
  const failures = (record.retry?.failures ?? 0) + 1;
  const retryInMs = Math.min(RETRY_BASE_MS * 2 ** (failures - 1), REFUSED_MAX_MS);
  record.retry = { failures, at: now + retryInMs };
  record.reason = `${refusal} (unchanged; read again in ${Math.round(retryInMs / 1000)} s)`;
  return retryInMs;
}

/**
 * Fails `record` for `reason` (`markFailed`) and logs it with the version that keeps serving its run
 * (`stillServing`, null when none). Returns the reason.
 */
export function failVersion(
  d: Pick<ManagerDeps, "clock" | "log">,
  record: VersionRecord,
  reason: string,
  kind: "version" | "store",
  stillServing: number | null,
): string {
  const retryInMs = markFailed(record, reason, kind, d.clock.now());
  d.log.error("adapter failed verification", {
    run: record.run,
    version: record.version,
    reason,
    retryInMs,
    stillServing,
  });
  return reason;
}
