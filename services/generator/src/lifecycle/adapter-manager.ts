import {
  type AdapterEvent,
  currentVersion,
  type RollbackRecord,
  RUN_NAME,
  revocationMessage,
  revokedBy,
} from "@loracast/shared/manifest";
import { err, ok, type Result } from "@loracast/shared/result";
import { StoreError } from "@loracast/shared/store";
import { deferRefused, failVersion, settledFailure } from "./failures.ts";
import { HeadWatch } from "./head-watch.ts";
import { fetchAndVerify } from "./pull.ts";
import { recheckActive } from "./recheck.ts";
import { type RevokedCounts, RevokedRequests } from "./revoked-requests.ts";
import type { EnsureError, ManagerDeps, Trigger, VersionRecord } from "./types.ts";
import { newVersionRecord, VersionCache } from "./version-cache.ts";

/** What requests naming a held run (or one of its versions) are told. */
export const heldMessage = (run: string, why: string): string =>
  `run ${run} is held until its store is repaired: ${why}`;

/** How many not-yet-failed versions one reconcile pass tries, newest first, before it gives up on a run. */
const CANDIDATES_PER_PASS = 3;

/**
 * The generator's adapter lifecycle. Webhooks and reconcile both end in `sync`, which pulls a
 * version, verifies it and activates it if it is newer than the active one (or if a rollback revoked
 * the active one, or the store no longer holds its manifest as verified: `recheck.ts`). Activation is one synchronous pointer swap, so a request either sees the old
 * version or the new one, never a mixture.
 */
export class AdapterManager {
  readonly cache: VersionCache;
  /** Freeze and rollback detection against each run's signed head. */
  readonly heads: HeadWatch;
  private readonly active = new Map<string, VersionRecord>();
  private readonly inFlight = new Map<string, Promise<Result<VersionRecord, string>>>();
  private readonly rollbacks = new Map<string, RollbackRecord[]>();
  private readonly knownVersions = new Map<string, number[]>();
  readonly stats = {
    activations: 0,
    failures: 0,
    /** Webhook events that announced other manifest bytes than the store holds (refused; the version is untouched). */
    badEvents: 0,
    reconciles: 0,
    reconcileErrors: 0,
    /** Requests (and `load_lora_adapter` calls) that named a revoked version, by run and outcome. */
    revokedRequests: new Map() as RevokedCounts,
  };
  private resolvedOnce = false;

  private readonly revoked: RevokedRequests;

  constructor(private readonly d: ManagerDeps) {
    this.revoked = new RevokedRequests(this.stats.revokedRequests, d.log);
    this.cache = new VersionCache(d.bounds);
    this.heads = new HeadWatch(d.store, d.clock, d.log, d.store.verifiesSignatures);
  }

  /** True once a reconcile pass has resolved the latest version of every followed run. */
  get ready(): boolean {
    return this.resolvedOnce;
  }

  follows(run: string): boolean {
    return this.d.runs === null || this.d.runs.includes(run);
  }

  activeVersions(): Record<string, { version: number; sha256: string | null }> {
    const out: Record<string, { version: number; sha256: string | null }> = {};
    for (const [run, r] of this.active) out[run] = { version: r.version, sha256: r.sha256 };
    return out;
  }

  /** Why `run` is held (nothing of it activated or pulled: `HeadWatch.held`), or null. */
  held(run: string): string | null {
    const why = this.heads.held(run);
    return why === null ? null : heldMessage(run, why);
  }

  /** Whether the store has listed versions of this run (active here or not). */
  hasVersions(run: string): boolean {
    return (this.knownVersions.get(run)?.length ?? 0) > 0;
  }

  activeRecord(run: string): VersionRecord | undefined {
    return this.active.get(run);
  }

  /** Takes a webhook event; the caller has already verified its signature. */
  async handleEvent(event: AdapterEvent): Promise<void> {
    if (!this.follows(event.run)) return;
    if (event.type === "adapter.rolled_back") {
      await this.reconcileRun(event.run, "rollback");
      return;
    }
    if (event.type !== "adapter.published") return;
    // A held run activates nothing new: the event is a cue to read the head again (the trainer
    // signs it before it sends the event), and the pass activates the version if the hold lifted.
    if (this.heads.held(event.run) !== null) {
      await this.reconcileRun(event.run, "webhook");
      return;
    }
    const current = this.active.get(event.run);
    if (current !== undefined && event.version <= current.version && !this.isWithdrawn(current)) {
      this.d.log.info("stale event ignored", {
        run: event.run,
        version: event.version,
        active: current.version,
      });
      return;
    }
    await this.sync(event.run, event.version, "webhook", event.manifestSha256);
  }

  /** Reconciles every followed run against the store. Errors are logged; the next pass retries. */
  async reconcile(): Promise<void> {
    this.stats.reconciles++;
    try {
      // Runs served here are visited even when the store no longer lists them (everything deleted).
      const runs = this.d.runs ?? [...new Set([...(await this.d.store.listRuns()), ...this.active.keys()])];
      await Promise.all(runs.map((run) => this.reconcileRun(run, "reconcile")));
      this.resolvedOnce = true;
    } catch (e) {
      this.stats.reconcileErrors++;
      this.d.log.warn("reconcile failed", { error: e });
    }
  }

  private async reconcileRun(run: string, trigger: Trigger): Promise<void> {
    // The whole listing each pass (one LIST per 1000 versions), not only what is newer than last
    // time: a running generator judges the store by what it holds now, as a fresh one and the
    // trainer do, so versions deleted since (hidden behind a signed head) show as `hidden_versions`.
    const versions = await this.d.store.listVersions(run);
    this.knownVersions.set(run, versions);
    const rollbacks = await this.d.store.listRollbacks(run);
    this.setRollbacks(run, rollbacks, trigger);
    await this.heads.check(run, versions, rollbacks.length);
    const current = this.active.get(run);
    if (current !== undefined && (await recheckActive(this.d, current, this.d.clock.now())) === "withdrawn")
      this.stats.failures++;
    // Fail closed: with a revocation hidden, any newer version may be one it revoked.
    if (this.heads.held(run) !== null) return;
    const target = currentVersion(versions, rollbacks);
    if (target === null) return;
    const withdrawn = current !== undefined && this.isWithdrawn(current);
    let tried = 0;
    for (let i = versions.length - 1; i >= 0 && tried < CANDIDATES_PER_PASS; i--) {
      const v = versions[i] as number;
      if (revokedBy(v, rollbacks) !== null) continue;
      if (current?.version === v && withdrawn) continue;
      if (current !== undefined && v <= current.version && !withdrawn) return;
      if (settledFailure(this.cache.get(run, v), this.d.clock.now())) continue;
      const r = await this.sync(run, v, trigger);
      if (r.ok) return;
      if (this.cache.get(run, v)?.manifestRefused !== true) tried++;
    }
  }

  /**
   * Makes sure `run@version` is downloaded and verified, for a request that names it. Does not
   * activate it: serving a pinned older version is not a downgrade of the run. A revoked version is
   * refused (before any download when the records already say so) unless `serveRevoked`. When it
   * pulls, or has never read the run's rollback records, it reads them alongside the pull, so a
   * generator that has not reconciled yet cannot serve a revoked version either.
   */
  async ensure(run: string, version: number): Promise<Result<VersionRecord, EnsureError>> {
    // Every caller parsed the name already; this keeps any other from building a store key of it.
    if (!RUN_NAME.test(run)) return err({ kind: "unavailable", message: `"${run}" is not a run name` });
    const held = this.heads.held(run);
    if (held !== null) return err({ kind: "held", message: heldMessage(run, held) });
    const existing = this.cache.get(run, version);
    if (existing !== undefined && settledFailure(existing, this.d.clock.now()))
      return err({ kind: "failed", message: existing.reason ?? "failed" });
    const known = this.rollbacks.get(run);
    const before = known === undefined ? null : revokedBy(version, known);
    if (before !== null && this.d.serveRevoked !== true) return this.revoked.refuse(version, before);
    const reread =
      existing?.adapter == null || known === undefined
        ? this.d.store.listRollbacks(run).catch(() => null)
        : null;
    const [loaded, records] = await Promise.all([this.load(run, version, "on-demand"), reread]);
    if (records !== null) this.setRollbacks(run, records, "on-demand");
    if (!loaded.ok) {
      const failed = this.cache.get(run, version)?.state === "failed";
      return err({ kind: failed ? "failed" : "unavailable", message: loaded.error });
    }
    if (!this.rollbacks.has(run)) {
      return err({ kind: "unavailable", message: `the rollback records of run ${run} could not be read` });
    }
    const revoker = revokedBy(version, this.rollbacks.get(run) ?? []);
    if (revoker === null) return ok(loaded.value);
    if (this.d.serveRevoked !== true) return this.revoked.refuse(version, revoker);
    this.revoked.served(version, revoker);
    return ok(loaded.value);
  }

  /**
   * The version `model: "<run>"` runs on: the active one; or, when a rollback revoked the active one
   * and its target is still being pulled here, that target (the request waits for the pull rather
   * than run on a revoked version). Null when the run has no active version here.
   */
  async current(run: string): Promise<Result<VersionRecord, EnsureError> | null> {
    const active = this.active.get(run);
    if (active === undefined) return null;
    const rollbacks = this.rollbacks.get(run) ?? [];
    const revoker = revokedBy(active.version, rollbacks);
    if (revoker === null) return ok(active);
    const target = currentVersion(this.knownVersions.get(run) ?? [], rollbacks);
    return target === null ? this.revoked.refuse(active.version, revoker) : this.ensure(run, target);
  }

  /** The version `model: "<run>"` names now (see `current`); null when there is none. */
  servingVersion(run: string): number | null {
    const active = this.active.get(run);
    if (active === undefined) return null;
    const rollbacks = this.rollbacks.get(run) ?? [];
    if (revokedBy(active.version, rollbacks) === null) return active.version;
    return currentVersion(this.knownVersions.get(run) ?? [], rollbacks);
  }

  /** Holds a version in memory until the returned release function is called. */
  pin(record: VersionRecord): () => void {
    record.pins++;
    record.lastUsedAt = this.d.clock.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      record.pins--;
      this.cache.trim();
    };
  }

  private async sync(
    run: string,
    version: number,
    trigger: Trigger,
    manifestSha256?: string,
  ): Promise<Result<VersionRecord, string>> {
    // A rollback may have been written while this webhook was in flight, its own event not yet
    // here: a webhook that pulls re-reads the records alongside the pull, so the read costs no time.
    // A rollback written after that read arrives as its own event. A version that was already
    // staged activates without a store round trip (the activation stays an in-memory swap); the
    // rollback events and reconcile passes keep the records it is checked against current.
    const pulls = this.cache.get(run, version)?.adapter == null;
    const reread = trigger === "webhook" && pulls ? this.d.store.listRollbacks(run).catch(() => null) : null;
    const loaded = await this.load(run, version, trigger, manifestSha256);
    if (!loaded.ok) return loaded;
    const record = loaded.value;
    const records = await reread;
    if (records != null) this.setRollbacks(run, records, trigger);
    if (this.isRevoked(record)) {
      this.d.log.info("revoked version not activated", { run, version });
      return err(record.reason ?? "revoked by a rollback");
    }
    const current = this.active.get(run);
    const isRollback = current !== undefined && version < current.version && this.isRevoked(current);
    if (
      current === undefined ||
      version > current.version ||
      (current !== record && this.isWithdrawn(current))
    )
      this.activate(record, current, isRollback);
    return ok(record);
  }

  private activate(record: VersionRecord, previous: VersionRecord | undefined, isRollback: boolean): void {
    const now = this.d.clock.now();
    record.state = "active";
    record.activatedAt = now;
    record.lastUsedAt = now;
    this.active.set(record.run, record);
    if (previous !== undefined && previous !== record) previous.lastUsedAt = now;
    // A withdrawn version served until now (recheck.ts); replaced, it is failed like any other.
    if (previous?.state === "failed") previous.adapter = null;
    // The previous version, and versions staged on demand that this one supersedes, become retired
    // (or revoked, on a rollback).
    for (const r of this.cache.all()) {
      if (r.run === record.run && r !== record && (r.state === "active" || r.state === "staged"))
        this.settle(r);
    }
    this.stats.activations++;
    this.cache.trim();
    this.d.log.info(isRollback ? "adapter rolled back" : "adapter activated", {
      run: record.run,
      version: record.version,
      sha256: record.sha256,
      previous: previous?.version ?? null,
      ms: now - record.announcedAt,
      ...record.phases,
    });
  }

  private isRevoked(record: VersionRecord): boolean {
    return revokedBy(record.version, this.rollbacks.get(record.run) ?? []) !== null;
  }

  /** An active version that another may replace, even an older one: revoked, or withdrawn (recheck.ts). */
  private isWithdrawn(record: VersionRecord): boolean {
    return record.state === "failed" || this.isRevoked(record);
  }

  /**
   * Takes the run's rollback records as last read, and marks every version they revoke `revoked`
   * (the active one once the rollback's target replaces it), including versions known only from the
   * store's listing, so /v1/adapters shows what this generator will refuse.
   */
  private setRollbacks(run: string, records: RollbackRecord[], trigger: Trigger): void {
    this.rollbacks.set(run, records);
    const now = this.d.clock.now();
    for (const version of this.knownVersions.get(run) ?? []) {
      if (this.cache.get(run, version) !== undefined || revokedBy(version, records) === null) continue;
      this.cache.set(newVersionRecord(run, version, trigger, now));
    }
    // A version that failed verification here stays failed: it is never served either way.
    for (const r of this.cache.all()) {
      if (r.run !== run || r.state === "active" || r.state === "failed" || r.state === "revoked") continue;
      if (this.isRevoked(r)) this.settle(r);
    }
  }

  /**
   * The state of a version that is neither active nor failed: `revoked` if a known rollback revoked
   * it, `retired` if an active version supersedes it, else `staged` (pulled) or `announced` (not yet).
   */
  private settle(record: VersionRecord): void {
    const revoker = revokedBy(record.version, this.rollbacks.get(record.run) ?? []);
    if (revoker !== null) {
      if (record.state !== "revoked")
        this.d.log.info("version revoked", { run: record.run, version: record.version, to: revoker.to });
      record.state = "revoked";
      record.reason = revocationMessage(record.version, revoker);
      return;
    }
    const active = this.active.get(record.run);
    if (active !== undefined && active.version > record.version) record.state = "retired";
    else record.state = record.adapter === null ? "announced" : "staged";
  }

  /** One pipeline per version at a time; concurrent callers share it. */
  private load(
    run: string,
    version: number,
    trigger: Trigger,
    manifestSha256?: string,
  ): Promise<Result<VersionRecord, string>> {
    const key = VersionCache.key(run, version);
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;
    const existing = this.cache.get(run, version);
    if (existing?.adapter != null) return Promise.resolve(ok(existing));
    const p = this.pipeline(run, version, trigger, manifestSha256).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async pipeline(
    run: string,
    version: number,
    trigger: Trigger,
    manifestSha256?: string,
  ): Promise<Result<VersionRecord, string>> {
    const now = this.d.clock.now();
    const known = this.cache.get(run, version);
    const record = known ?? newVersionRecord(run, version, trigger, now);
    record.trigger = trigger;
    record.announcedAt = now;
    this.cache.set(record);
    try {
      const adapter = await fetchAndVerify(this.d, this.cache, record, manifestSha256);
      if (!adapter.ok) {
        const error = adapter.error;
        if (error.kind === "absent") {
          // Anyone may name `<run>@<version>` in a request: a version the store does not have leaves
          // no record behind (records would grow without bound, and would make a made-up run look
          // known). A version seen before keeps its record and state; reconcile finds it when it lands.
          if (known === undefined) this.cache.delete(record);
          else if (record.state !== "revoked") record.reason = error.reason;
          this.d.log.info("adapter not in the store", { run, version, trigger });
          return err(error.reason);
        }
        if (error.kind === "unchanged") {
          // Refused already, logged and counted then: only the next read is scheduled.
          deferRefused(record, error.reason, this.d.clock.now());
          return err(record.reason ?? error.reason);
        }
        if (error.kind !== "event") {
          this.stats.failures++;
          const stillServing = this.active.get(run)?.version ?? null;
          return err(failVersion(this.d, record, error.reason, error.kind, stillServing));
        }
        this.stats.badEvents++;
        const reason = `event refused: ${error.reason}`;
        if (record.state !== "revoked" && record.state !== "failed") record.reason = reason;
        this.d.log.warn("webhook event refused", { run, version, reason });
        return err(reason);
      }
      record.adapter = adapter.value;
      record.reason = null;
      record.retry = null;
      this.settle(record);
      return ok(record);
    } catch (e) {
      // The store is down or the download broke off: nothing is wrong with the version itself, so
      // its state stays as it was (announced, for a first pull) and the next reconcile pass retries.
      const reason = e instanceof StoreError ? e.message : `unexpected: ${(e as Error).message}`;
      if (record.state !== "revoked") record.reason = reason;
      this.d.log.warn("adapter pull interrupted", { run, version, reason });
      if (!(e instanceof StoreError))
        this.d.log.error("unexpected pipeline error", { error: e, stack: (e as Error).stack });
      return err(reason);
    } finally {
      record.pulling = null;
    }
  }
}
