/**
 * Why a version gave no adapter, as a discriminated union (`PullFailure`), and when a failed version
 * is tried again. A version failed for what it holds (a bad manifest, weights that do not verify)
 * stays failed for good: versions are immutable. One failed for what the store holds now (a missing
 * or corrupt blob, a refused signature) may heal when the store is repaired or a publish rewrites the
 * blob, so it is retried with backoff: 2 s, doubling, at most 5 minutes.
 */
import type { StoreRefusalCode } from "@loracast/shared/manifest";
import type { ManagerDeps, VersionRecord } from "./types.ts";

/**
 * Why a pull (or a sync) of one version gave no adapter. `reason` is the text operators see: the
 * version's `reason` in `GET /v1/adapters`, the `reason` of the log line, and the message of the
 * API error a request naming the version gets; `kind` is what the lifecycle decides on
 * (`FAULT_OF`). Every kind is listed with whose fault it is:
 */
export type PullFailure =
  // Nothing to judge (the version keeps its state):
  /** The store has no manifest for that version (yet); nothing is recorded for a version never heard of. */
  | { kind: "absent"; reason: string }
  /** The store still holds the manifest bytes refused before (`VersionRecord.refusal`): not judged again. */
  | { kind: "unchanged"; reason: string }
  /** A webhook announced other manifest bytes than the store holds: the event is refused, not the version. */
  | { kind: "event_mismatch"; reason: string }
  /** The store could not be read, or the download broke off (a thrown `StoreError`); retried next pass. */
  | { kind: "interrupted"; reason: string }
  /** A rollback record revokes it: pulled, never activated. */
  | { kind: "revoked"; reason: string }
  // What the store holds now (failed, retried with backoff):
  /** The store refused the manifest on read (signature, JSON, schema, key), with the store's refusal code. */
  | { kind: "manifest_refused"; code: StoreRefusalCode; reason: string }
  /** A blob is missing, or its size or sha256 is not the manifest's. */
  | { kind: "blob_unavailable"; reason: string }
  // What the immutable version holds (failed for good):
  /** The manifest lists no `adapter_model.safetensors` or no `adapter_config.json`. */
  | { kind: "manifest_incomplete"; reason: string }
  /** A blob announces more bytes than the adapter cache holds (`CACHE_MAX_MB`). */
  | { kind: "blob_too_large"; bytes: number; reason: string }
  /** The manifest names another base fingerprint than this generator's (or one it also accepts). */
  | { kind: "base_mismatch"; fingerprint: string; reason: string }
  /** PEFT `adapter_config.json` or the safetensors do not verify against the base's module map. */
  | { kind: "invalid_adapter"; reason: string }
  /** The manifest's probe scored here differs from the trainer's log-probabilities beyond the tolerance. */
  | { kind: "probe_mismatch"; reason: string };

/**
 * Whose fault each failure is: `version` fails the version for good, `store` fails it and retries
 * with backoff (`markFailed`), `none` leaves its state (only its `reason` may say what happened).
 */
export const FAULT_OF: Record<PullFailure["kind"], "version" | "store" | "none"> = {
  absent: "none",
  unchanged: "none",
  event_mismatch: "none",
  interrupted: "none",
  revoked: "none",
  manifest_refused: "store",
  blob_unavailable: "store",
  manifest_incomplete: "version",
  blob_too_large: "version",
  base_mismatch: "version",
  invalid_adapter: "version",
  probe_mismatch: "version",
};

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
  fault: "version" | "store",
  now: number,
): number | null {
  record.state = "failed";
  record.adapter = null;
  if (fault === "version") {
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
 * doubling past the usual bound, up to 30 minutes. Sets and returns `record.reason`, which says when.
 */
export function deferRefused(record: VersionRecord, refusal: string, now: number): string {
  const failures = (record.retry?.failures ?? 0) + 1;
  const retryInMs = Math.min(RETRY_BASE_MS * 2 ** (failures - 1), REFUSED_MAX_MS);
  record.retry = { failures, at: now + retryInMs };
  record.reason = `${refusal} (unchanged; read again in ${Math.round(retryInMs / 1000)} s)`;
  return record.reason;
}

/**
 * Fails `record` for `failure`, a `version` or `store` fault (`markFailed`), and logs it with the
 * version that keeps serving its run (`stillServing`, null when none).
 */
export function failVersion(
  d: Pick<ManagerDeps, "clock" | "log">,
  record: VersionRecord,
  failure: PullFailure,
  fault: "version" | "store",
  stillServing: number | null,
): void {
  const retryInMs = markFailed(record, failure.reason, fault, d.clock.now());
  d.log.error("adapter failed verification", {
    run: record.run,
    version: record.version,
    reason: failure.reason,
    retryInMs,
    stillServing,
  });
}
