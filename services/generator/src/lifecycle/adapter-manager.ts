/**
 * The generator's adapter lifecycle, one front door over its parts: the reconcile policy
 * (`reconciler.ts`), the puller and verifier (`puller.ts`, `verifier.ts`), the active-set registry
 * (`active-set.ts`), the version cache and its eviction (`version-cache.ts`), and freeze and rollback
 * detection (`head-watch.ts`). Requests reach versions through `current` (`<run>`) and `ensure`
 * (`<run>@<version>`), which never activate anything.
 */
import { type AdapterEvent, RUN_NAME } from "@loracast/shared/manifest";
import { err, ok, type Result } from "@loracast/shared/result";
import { ActiveSet } from "./active-set.ts";
import { settledFailure } from "./failures.ts";
import { HeadWatch } from "./head-watch.ts";
import { Puller } from "./puller.ts";
import { Reconciler } from "./reconciler.ts";
import { RevokedRequests } from "./revoked-requests.ts";
import type { EnsureError, ManagerDeps, ManagerStats, VersionRecord } from "./types.ts";
import { VersionCache } from "./version-cache.ts";

/** What requests naming a held run (or one of its versions) are told. */
const heldMessage = (run: string, why: string): string =>
  `run ${run} is held until its store is repaired: ${why}`;

/** The generator's adapter lifecycle (see the module comment); routes and `main.ts` use only this. */
export class AdapterManager {
  /** Every version known here and the memory its weights hold (eviction under `CACHE_MAX_MB`). */
  readonly cache: VersionCache;
  /** Freeze and rollback detection against each run's signed head. */
  readonly heads: HeadWatch;
  /** The lifecycle's counters (`/metrics`). */
  readonly stats: ManagerStats = {
    activations: 0,
    failures: 0,
    badEvents: 0,
    reconciles: 0,
    reconcileErrors: 0,
    revokedRequests: new Map(),
  };
  private readonly set: ActiveSet;
  private readonly puller: Puller;
  private readonly reconciler: Reconciler;
  private readonly revoked: RevokedRequests;

  constructor(private readonly d: ManagerDeps) {
    this.revoked = new RevokedRequests(this.stats.revokedRequests, d.log);
    this.cache = new VersionCache(d.bounds);
    this.heads = new HeadWatch(d.store, d.clock, d.log, d.store.verifiesSignatures);
    this.set = new ActiveSet(this.cache, d.clock, d.log, d.onActivated);
    this.puller = new Puller(d, this.cache, this.set, this.stats);
    const { cache, heads, set, puller, stats } = this;
    this.reconciler = new Reconciler({ d, set, puller, heads, cache, stats });
  }

  /** True once a reconcile pass has resolved the latest version of every followed run. */
  get ready(): boolean {
    return this.reconciler.ready;
  }

  /** Whether this generator follows `run` (`GENERATOR_RUNS`; every run when unset). */
  follows(run: string): boolean {
    return this.d.runs === null || this.d.runs.includes(run);
  }

  /** Each run's active version and the sha256 of its weights. */
  activeVersions(): Record<string, { version: number; sha256: string | null }> {
    return this.set.versions();
  }

  /** Why `run` is held (nothing of it activated or pulled: `HeadWatch.held`), or null. */
  held(run: string): string | null {
    const why = this.heads.held(run);
    return why === null ? null : heldMessage(run, why);
  }

  /** Whether the store has listed versions of this run (active here or not). */
  hasVersions(run: string): boolean {
    return this.set.listedVersions(run).length > 0;
  }

  /** The active version of `run`, if any (it may be revoked or withdrawn: see `current`). */
  activeRecord(run: string): VersionRecord | undefined {
    return this.set.get(run);
  }

  /** Takes a webhook event; the caller has already verified its signature. Runs not followed are ignored. */
  async handleEvent(event: AdapterEvent): Promise<void> {
    if (this.follows(event.run)) await this.reconciler.handleEvent(event);
  }

  /** Reconciles every followed run against the store. Errors are logged; the next pass retries. */
  reconcile(): Promise<void> {
    return this.reconciler.reconcile();
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
    const known = this.set.rollbacksOf(run);
    const before = known === undefined ? null : this.set.revoker(run, version);
    if (before !== null && this.d.serveRevoked !== true) return this.revoked.refuse(version, before);
    const reread =
      existing?.adapter == null || known === undefined
        ? this.d.store.listRollbacks(run).catch(() => null)
        : null;
    const [loaded, records] = await Promise.all([this.puller.load(run, version, "on-demand"), reread]);
    if (records !== null) this.set.setRollbacks(run, records, "on-demand");
    if (!loaded.ok) {
      const failed = this.cache.get(run, version)?.state === "failed";
      return err({ kind: failed ? "failed" : "unavailable", message: loaded.error.reason });
    }
    if (this.set.rollbacksOf(run) === undefined) {
      return err({ kind: "unavailable", message: `the rollback records of run ${run} could not be read` });
    }
    const revoker = this.set.revoker(run, version);
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
    const active = this.set.get(run);
    if (active === undefined) return null;
    const revoker = this.set.revoker(run, active.version);
    if (revoker === null) return ok(active);
    const target = this.set.servingVersion(run);
    return target === null ? this.revoked.refuse(active.version, revoker) : this.ensure(run, target);
  }

  /** The version `model: "<run>"` names now (see `current`); null when there is none. */
  servingVersion(run: string): number | null {
    return this.set.servingVersion(run);
  }

  /** Holds a version in memory until the returned release function (idempotent) is called. */
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
}
