/**
 * Pulling a version: its manifest read raw, then verified by the store (signature, schema, key) and
 * judged (`verifier.ts`), its blobs downloaded into a (possibly reused) buffer, then verified and
 * scored. One pull per version at a time; each outcome is recorded on the version (`failures.ts`).
 */
import { err, ok, type Result } from "@loracast/shared/result";
import { StoreError, sha256Hex } from "@loracast/shared/store";
import type { ActiveSet } from "./active-set.ts";
import { deferRefused, FAULT_OF, failVersion, type PullFailure } from "./failures.ts";
import type { LoadedAdapter, ManagerDeps, ManagerStats, Trigger, VersionRecord } from "./types.ts";
import { checkBase, manifestFiles, verifyPulled } from "./verifier.ts";
import { newVersionRecord, VersionCache } from "./version-cache.ts";

/**
 * Reads `record`'s manifest (checked against `manifestSha256` when a webhook announced one), downloads
 * and verifies its files, and scores the manifest's probe. An `err` says why (`PullFailure`); a thrown
 * `StoreError` is the store's availability (transient). Sets `record.pulling`, `sha256`, `bytes`,
 * `manifestSha256`, `manifestRefused`, `refusal` and `phases` as it goes.
 */
export async function pullVersion(
  d: ManagerDeps,
  cache: VersionCache,
  record: VersionRecord,
  manifestSha256?: string,
): Promise<Result<LoadedAdapter, PullFailure>> {
  record.pulling = "downloading";
  const t0 = d.clock.now();
  const key = record.manifestKey;
  const absent = () => err({ kind: "absent" as const, reason: `manifest ${key} is not in the store (yet)` });
  // Read raw first: bytes refused before are not judged (nor logged, nor counted) again.
  const raw = await d.store.objects.get(key);
  if (raw === null) return absent();
  const rawSha256 = sha256Hex(raw);
  const announced = manifestSha256 ?? rawSha256;
  if (announced === rawSha256 && record.refusal?.sha256 === rawSha256)
    return err({ kind: "unchanged", reason: record.refusal.reason });
  // Verified as the bytes just read: a manifest replaced between the two reads is refused as
  // `event_mismatch`, and is then a store read that broke off, not a bad event (retried next pass).
  const read = await d.store.readManifest(key, announced);
  const tManifest = d.clock.now();
  if (read === null) return absent();
  if (!read.ok && read.error.code === "event_mismatch" && manifestSha256 === undefined)
    throw new StoreError("unavailable", `manifest ${key} changed while it was read`);
  // Every refusal of the manifest costs a small read or two and no download.
  record.manifestRefused = !read.ok;
  record.refusal =
    read.ok || read.error.code === "event_mismatch" ? null : { sha256: rawSha256, reason: read.error.reason };
  // A webhook that announces other bytes than the store holds is a bad event, not a bad version:
  // the version keeps its state and is judged on what the store holds (reconcile pulls it).
  if (!read.ok && read.error.code === "event_mismatch")
    return err({ kind: "event_mismatch", reason: `event refused: ${read.error.reason}` });
  if (!read.ok) return err({ kind: "manifest_refused", code: read.error.code, reason: read.error.reason });
  const { manifest } = read.value;
  record.manifestSha256 = read.value.sha256;
  record.publishedAt = Date.parse(manifest.createdAt);
  const files = manifestFiles(manifest, d.bounds.maxBytes);
  if (!files.ok) {
    // The store counts these refusals with its own, under one metric.
    const { code, failure } = files.error;
    record.manifestRefused = true;
    d.store.reportRefusal({ record: "manifest", key, code, reason: `manifest ${key}: ${failure.reason}` });
    return err(failure);
  }
  const { weights: weightsEntry, config: configEntry } = files.value;
  record.sha256 = weightsEntry.sha256;
  record.bytes = weightsEntry.bytes;
  const base = checkBase(d, manifest);
  if (base !== null) return err(base);
  // Make room first, so the bound holds while the new weights download, not only after. Versions
  // of a run are usually all the same size: an evicted buffer of that size receives the download,
  // so there is no fresh memory to page in and no garbage for the collector.
  const into = cache.evict(weightsEntry.bytes).find((e) => e.weights.byteLength === weightsEntry.bytes);
  const [weights, configBytes] = await Promise.all([
    d.store.downloadBlob(weightsEntry, into === undefined ? {} : { into: into.weights }),
    d.store.downloadBlob(configEntry),
  ]);
  // A missing or corrupt blob may be restored or rewritten (a later publish heals a corrupt one).
  if (!weights.ok) return err({ kind: "blob_unavailable", reason: weights.error.reason });
  if (!configBytes.ok) return err({ kind: "blob_unavailable", reason: configBytes.error.reason });

  record.pulling = "verifying";
  const tDownload = d.clock.now();
  const verified = await verifyPulled(d, manifest, weights.value, configBytes.value);
  if (!verified.ok) return verified;
  record.phases = {
    manifestMs: tManifest - t0,
    downloadMs: tDownload - tManifest,
    verifyMs: d.clock.now() - tDownload,
  };
  return verified;
}

/**
 * Runs one pull per version at a time (concurrent callers share it) and records its outcome on the
 * version: staged (or retired, revoked) with its weights, failed (`FAULT_OF`), or unchanged with a
 * reason; `stats.failures` and `stats.badEvents` count failed versions and refused events.
 */
export class Puller {
  private readonly inFlight = new Map<string, Promise<Result<VersionRecord, PullFailure>>>();

  constructor(
    private readonly d: ManagerDeps,
    private readonly cache: VersionCache,
    private readonly set: ActiveSet,
    private readonly stats: ManagerStats,
  ) {}

  /** `run@version` with its weights: from the cache when held, else pulled (`pullVersion`). */
  load(
    run: string,
    version: number,
    trigger: Trigger,
    manifestSha256?: string,
  ): Promise<Result<VersionRecord, PullFailure>> {
    const key = VersionCache.key(run, version);
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;
    const existing = this.cache.get(run, version);
    if (existing?.adapter != null) return Promise.resolve(ok(existing));
    const p = this.pull(run, version, trigger, manifestSha256).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async pull(
    run: string,
    version: number,
    trigger: Trigger,
    manifestSha256?: string,
  ): Promise<Result<VersionRecord, PullFailure>> {
    const now = this.d.clock.now();
    const known = this.cache.get(run, version);
    const record = known ?? newVersionRecord(run, version, trigger, now);
    record.trigger = trigger;
    record.announcedAt = now;
    this.cache.set(record);
    try {
      const adapter = await pullVersion(this.d, this.cache, record, manifestSha256);
      if (!adapter.ok) return err(this.failed(record, known !== undefined, adapter.error));
      record.adapter = adapter.value;
      record.reason = null;
      record.retry = null;
      this.set.settle(record);
      return ok(record);
    } catch (e) {
      // The store is down or the download broke off: nothing is wrong with the version itself, so
      // its state stays as it was (announced, for a first pull) and the next reconcile pass retries.
      const reason = e instanceof StoreError ? e.message : `unexpected: ${(e as Error).message}`;
      if (record.state !== "revoked") record.reason = reason;
      this.d.log.warn("adapter pull interrupted", { run, version, reason });
      if (!(e instanceof StoreError))
        this.d.log.error("unexpected pipeline error", { error: e, stack: (e as Error).stack });
      return err({ kind: "interrupted", reason });
    } finally {
      record.pulling = null;
    }
  }

  /** Records `failure` on `record` (`known`: whether it had a record before this pull); returns what the caller is told. */
  private failed(record: VersionRecord, known: boolean, failure: PullFailure): PullFailure {
    const { run, version, trigger } = record;
    const fault = FAULT_OF[failure.kind];
    if (fault !== "none") {
      this.stats.failures++;
      failVersion(this.d, record, failure, fault, this.set.get(run)?.version ?? null);
      return failure;
    }
    switch (failure.kind) {
      case "absent":
        // Anyone may name `<run>@<version>` in a request: a version the store does not have leaves
        // no record behind (records would grow without bound, and would make a made-up run look
        // known). A version seen before keeps its record and state; reconcile finds it when it lands.
        if (!known) this.cache.delete(record);
        else if (record.state !== "revoked") record.reason = failure.reason;
        this.d.log.info("adapter not in the store", { run, version, trigger });
        return failure;
      case "unchanged":
        // Refused already, logged and counted then: only the next read is scheduled.
        return { kind: "unchanged", reason: deferRefused(record, failure.reason, this.d.clock.now()) };
      case "event_mismatch":
        this.stats.badEvents++;
        if (record.state !== "revoked" && record.state !== "failed") record.reason = failure.reason;
        this.d.log.warn("webhook event refused", { run, version, reason: failure.reason });
        return failure;
      default:
        return failure;
    }
  }
}
