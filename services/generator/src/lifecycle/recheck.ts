/**
 * The store is the truth for every reader, so a generator keeps asking whether the version it serves
 * as `<run>` is still what the store holds (issue 15: every generator agrees with the trainer's
 * record). A fresh generator and the trainer's `GET /v1/runs/:run/versions` judge a version by the
 * manifest the store holds now; a generator that verified the genuine manifest earlier must not keep
 * serving a version both of them call failed after the manifest was deleted, replaced or moved.
 */
import { sha256Hex } from "@loracast/shared/store";
import { markFailed } from "./failures.ts";
import type { ManagerDeps, VersionRecord } from "./types.ts";

/** What one recheck found: nothing new, the version withdrawn just now, or reinstated (restored). */
export type Recheck = "unchanged" | "withdrawn" | "reinstated";

/**
 * Re-reads the active version's manifest (one small GET when it is unchanged). When the store no
 * longer holds the bytes this generator verified, the version is failed with the reason the store's
 * copy gives (missing, or refused with its code, counted as a refused record), retried with backoff
 * like any store failure; its weights stay, and it keeps serving until reconcile activates the newest
 * version that verifies now (the trainer's `current`). Once the store holds the verified bytes again
 * with a trusted signature, a version still active here is reinstated. A store outage throws
 * (`StoreError`) and changes nothing.
 */
export async function recheckActive(d: ManagerDeps, record: VersionRecord, now: number): Promise<Recheck> {
  const key = record.manifestKey;
  const bytes = await d.store.objects.get(key);
  const sha256 = bytes === null ? null : sha256Hex(bytes);
  if (record.state !== "failed" && sha256 === record.manifestSha256) return "unchanged";
  // Withdrawn: nothing to judge while the manifest is missing or still the bytes refused before.
  if (record.state === "failed" && (sha256 === null || sha256 === record.refusal?.sha256)) return "unchanged";
  // Through the verifying read, so a refusal is counted, logged and listed with its code (once per
  // bytes: `record.refusal`), checked to be the bytes just read.
  const read = sha256 === null ? null : await d.store.readManifest(key, sha256);
  record.refusal = read === null || read.ok ? null : { sha256: sha256 as string, reason: read.error.reason };
  if (record.state === "failed") {
    if (read?.ok !== true || read.value.sha256 !== record.manifestSha256) return "unchanged";
    record.state = "active";
    record.reason = null;
    record.retry = null;
    d.log.info("active version reinstated", { run: record.run, version: record.version });
    return "reinstated";
  }
  const reason =
    read === null
      ? `manifest ${key} is missing from the store`
      : !read.ok
        ? read.error.reason
        : `manifest ${key} changed since it was verified (sha256 ${read.value.sha256}, verified ${record.manifestSha256})`;
  const weights = record.adapter;
  const retryInMs = markFailed(record, reason, "store", now);
  // What it verified keeps serving `<run>` until a version that verifies now replaces it.
  record.adapter = weights;
  d.log.warn("active version withdrawn: the store no longer holds the manifest it verified", {
    run: record.run,
    version: record.version,
    reason,
    retryInMs,
  });
  return "withdrawn";
}
