/**
 * The reconcile policy: which version each followed run should serve, decided from webhook events
 * and from periodic passes over the store (the store is the truth; a missed webhook is caught by the
 * next pass). Both end in `sync`, which pulls a version (`puller.ts`) and activates it
 * (`active-set.ts`) if it is newer than the active one, or if a rollback revoked the active one, or
 * the store no longer holds its manifest as verified (`recheck.ts`).
 */
import { type AdapterEvent, currentVersion, revokedBy } from "@loracast/shared/manifest";
import { err, ok, type Result } from "@loracast/shared/result";
import type { ActiveSet } from "./active-set.ts";
import { type PullFailure, settledFailure } from "./failures.ts";
import type { HeadWatch } from "./head-watch.ts";
import type { Puller } from "./puller.ts";
import { recheckActive } from "./recheck.ts";
import type { ManagerDeps, ManagerStats, Trigger, VersionRecord } from "./types.ts";
import type { VersionCache } from "./version-cache.ts";

/** How many not-yet-failed versions one reconcile pass tries, newest first, before it gives up on a run. */
export const CANDIDATES_PER_PASS = 3;

/** What the reconciler works with: the manager's dependencies and its parts. */
export interface ReconcilerParts {
  d: ManagerDeps;
  set: ActiveSet;
  puller: Puller;
  heads: HeadWatch;
  cache: VersionCache;
  stats: ManagerStats;
}

/** Turns events and store passes into activations (see the module comment). */
export class Reconciler {
  private resolvedOnce = false;

  constructor(private readonly p: ReconcilerParts) {}

  /** True once a reconcile pass has resolved the latest version of every followed run. */
  get ready(): boolean {
    return this.resolvedOnce;
  }

  /** Takes a webhook event of a followed run; the caller has already verified its signature. */
  async handleEvent(event: AdapterEvent): Promise<void> {
    const { heads, set, d } = this.p;
    if (event.type === "adapter.rolled_back") {
      await this.reconcileRun(event.run, "rollback");
      return;
    }
    if (event.type !== "adapter.published") return;
    // A held run activates nothing new: the event is a cue to read the head again (the trainer
    // signs it before it sends the event), and the pass activates the version if the hold lifted.
    if (heads.held(event.run) !== null) {
      await this.reconcileRun(event.run, "webhook");
      return;
    }
    const current = set.get(event.run);
    if (current !== undefined && event.version <= current.version && !set.isWithdrawn(current)) {
      d.log.info("stale event ignored", { run: event.run, version: event.version, active: current.version });
      return;
    }
    await this.sync(event.run, event.version, "webhook", event.manifestSha256);
  }

  /** Reconciles every followed run against the store. Errors are logged; the next pass retries. */
  async reconcile(): Promise<void> {
    const { d, set, stats } = this.p;
    stats.reconciles++;
    try {
      // Runs served here are visited even when the store no longer lists them (everything deleted).
      const runs = d.runs ?? [...new Set([...(await d.store.listRuns()), ...set.runs()])];
      await Promise.all(runs.map((run) => this.reconcileRun(run, "reconcile")));
      this.resolvedOnce = true;
    } catch (e) {
      stats.reconcileErrors++;
      d.log.warn("reconcile failed", { error: e });
    }
  }

  /**
   * One run's pass: reads its signed head, lists its versions and rollback records and checks them
   * against the head (`HeadWatch`), rechecks the active version's manifest, then tries the newest versions not
   * revoked, newer than the active one (or any, when the active one is withdrawn), and not failed
   * for now, up to `CANDIDATES_PER_PASS` pulls that cost a download. A held run activates nothing.
   */
  private async reconcileRun(run: string, trigger: Trigger): Promise<void> {
    const { d, set, heads, cache, stats } = this.p;
    // The head before the listings, so that they hold everything it names (`HeadWatch.read`).
    const head = await heads.read(run);
    // The whole listing each pass (one LIST per 1000 versions), not only what is newer than last
    // time: a running generator judges the store by what it holds now, as a fresh one and the
    // trainer do, so versions deleted since (hidden behind a signed head) show as `hidden_versions`.
    const versions = await d.store.listVersions(run);
    set.setListed(run, versions);
    const rollbacks = await d.store.listRollbacks(run);
    set.setRollbacks(run, rollbacks, trigger);
    heads.check(run, head, versions, rollbacks.length);
    const current = set.get(run);
    if (current !== undefined && (await recheckActive(d, current, d.clock.now())) === "withdrawn")
      stats.failures++;
    // Fail closed: with a revocation hidden, any newer version may be one it revoked.
    if (heads.held(run) !== null) return;
    if (currentVersion(versions, rollbacks) === null) return;
    const withdrawn = current !== undefined && set.isWithdrawn(current);
    let tried = 0;
    for (let i = versions.length - 1; i >= 0 && tried < CANDIDATES_PER_PASS; i--) {
      const v = versions[i] as number;
      if (revokedBy(v, rollbacks) !== null) continue;
      if (current?.version === v && withdrawn) continue;
      if (current !== undefined && v <= current.version && !withdrawn) return;
      if (settledFailure(cache.get(run, v), d.clock.now())) continue;
      const r = await this.sync(run, v, trigger);
      if (r.ok) return;
      // A refused manifest costs a small read or two and no download: it does not use up the pass.
      if (cache.get(run, v)?.manifestRefused !== true) tried++;
    }
  }

  /**
   * Pulls `run@version` (when not staged yet) and activates it when it is newer than the active
   * version or replaces a withdrawn one. A revoked version is never activated (`revoked`).
   */
  private async sync(
    run: string,
    version: number,
    trigger: Trigger,
    manifestSha256?: string,
  ): Promise<Result<VersionRecord, PullFailure>> {
    const { d, set, puller, cache, stats } = this.p;
    // A rollback may have been written while this webhook was in flight, its own event not yet
    // here: a webhook that pulls re-reads the records alongside the pull, so the read costs no time.
    // A rollback written after that read arrives as its own event. A version that was already
    // staged activates without a store round trip (the activation stays an in-memory swap); the
    // rollback events and reconcile passes keep the records it is checked against current.
    const pulls = cache.get(run, version)?.adapter == null;
    const reread = trigger === "webhook" && pulls ? d.store.listRollbacks(run).catch(() => null) : null;
    const loaded = await puller.load(run, version, trigger, manifestSha256);
    if (!loaded.ok) return loaded;
    const record = loaded.value;
    const records = await reread;
    if (records != null) set.setRollbacks(run, records, trigger);
    if (set.isRevoked(record)) {
      d.log.info("revoked version not activated", { run, version });
      return err({ kind: "revoked", reason: record.reason ?? "revoked by a rollback" });
    }
    const current = set.get(run);
    const isRollback = current !== undefined && version < current.version && set.isRevoked(current);
    if (
      current === undefined ||
      version > current.version ||
      (current !== record && set.isWithdrawn(current))
    ) {
      set.activate(record, current, isRollback);
      stats.activations++;
    }
    return ok(record);
  }
}
