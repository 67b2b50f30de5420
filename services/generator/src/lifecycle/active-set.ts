/**
 * The active-set registry: which version each run serves, the run's rollback records and listed
 * versions as last read, and the state every other known version settles in (revoked, retired,
 * staged, announced). Activation is one synchronous pointer swap, so a request either sees the old
 * version or the new one, never a mixture.
 */
import { currentVersion, type RollbackRecord, revocationMessage, revokedBy } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import type { Trigger, VersionRecord } from "./types.ts";
import { newVersionRecord, type VersionCache } from "./version-cache.ts";

/** The version each run serves, and what decides the state of the others (see the module comment). */
export class ActiveSet {
  private readonly active = new Map<string, VersionRecord>();
  private readonly rollbacks = new Map<string, RollbackRecord[]>();
  private readonly listed = new Map<string, number[]>();

  constructor(
    private readonly cache: VersionCache,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onActivated?: (publishToActiveSeconds: number) => void,
  ) {}

  /** The active version of `run`, if any. */
  get(run: string): VersionRecord | undefined {
    return this.active.get(run);
  }

  /** Every run with an active version here. */
  runs(): string[] {
    return [...this.active.keys()];
  }

  /** Each run's active version and the sha256 of its weights (`/readyz`, `/v1/adapters`). */
  versions(): Record<string, { version: number; sha256: string | null }> {
    const out: Record<string, { version: number; sha256: string | null }> = {};
    for (const [run, r] of this.active) out[run] = { version: r.version, sha256: r.sha256 };
    return out;
  }

  /** Takes the run's version numbers as the store listed them last, ascending. */
  setListed(run: string, versions: number[]): void {
    this.listed.set(run, versions);
  }

  /** The run's version numbers as the store listed them last (empty before any listing). */
  listedVersions(run: string): number[] {
    return this.listed.get(run) ?? [];
  }

  /** The run's rollback records as last read; undefined when they were never read. */
  rollbacksOf(run: string): RollbackRecord[] | undefined {
    return this.rollbacks.get(run);
  }

  /** The rollback record that revokes `run@version`, as last read; null when none does. */
  revoker(run: string, version: number): RollbackRecord | null {
    return revokedBy(version, this.rollbacks.get(run) ?? []);
  }

  /** Whether a known rollback record revokes `record`. */
  isRevoked(record: VersionRecord): boolean {
    return this.revoker(record.run, record.version) !== null;
  }

  /** An active version that another may replace, even an older one: revoked, or withdrawn (recheck.ts). */
  isWithdrawn(record: VersionRecord): boolean {
    return record.state === "failed" || this.isRevoked(record);
  }

  /**
   * The version `model: "<run>"` names now: the active one, or the rollback's target when a
   * rollback revoked the active one (`currentVersion` over the listed versions); null when the run
   * has no active version here, or no version left unrevoked.
   */
  servingVersion(run: string): number | null {
    const active = this.active.get(run);
    if (active === undefined) return null;
    const rollbacks = this.rollbacks.get(run) ?? [];
    if (revokedBy(active.version, rollbacks) === null) return active.version;
    return currentVersion(this.listedVersions(run), rollbacks);
  }

  /**
   * Takes the run's rollback records as last read, and marks every version they revoke `revoked`
   * (the active one once the rollback's target replaces it), including versions known only from the
   * store's listing, so /v1/adapters shows what this generator will refuse.
   */
  setRollbacks(run: string, records: RollbackRecord[], trigger: Trigger): void {
    this.rollbacks.set(run, records);
    const now = this.clock.now();
    for (const version of this.listedVersions(run)) {
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
   * Makes `record` its run's active version in one swap. The previous version, and versions staged
   * on demand that this one supersedes, become retired (or revoked, on a rollback); a withdrawn
   * previous version (recheck.ts) drops its weights, failed like any other. Logs the activation with
   * the time since the version was announced and since it was published (ms) and where its pull
   * spent it; `onActivated` gets the publish → active seconds.
   */
  activate(record: VersionRecord, previous: VersionRecord | undefined, isRollback: boolean): void {
    const now = this.clock.now();
    record.state = "active";
    record.activatedAt = now;
    record.lastUsedAt = now;
    this.active.set(record.run, record);
    if (previous !== undefined && previous !== record) previous.lastUsedAt = now;
    if (previous?.state === "failed") previous.adapter = null;
    for (const r of this.cache.all()) {
      if (r.run === record.run && r !== record && (r.state === "active" || r.state === "staged"))
        this.settle(r);
    }
    this.cache.trim();
    if (record.publishedAt !== null) this.onActivated?.((now - record.publishedAt) / 1000);
    this.log.info(isRollback ? "adapter rolled back" : "adapter activated", {
      run: record.run,
      version: record.version,
      sha256: record.sha256,
      previous: previous?.version ?? null,
      ms: now - record.announcedAt,
      sincePublishMs: record.publishedAt === null ? null : now - record.publishedAt,
      ...record.phases,
    });
  }

  /**
   * The state of a version that is neither active nor failed: `revoked` if a known rollback revoked
   * it, `retired` if an active version supersedes it, else `staged` (pulled) or `announced` (not yet).
   */
  settle(record: VersionRecord): void {
    const revoker = this.revoker(record.run, record.version);
    if (revoker !== null) {
      if (record.state !== "revoked")
        this.log.info("version revoked", { run: record.run, version: record.version, to: revoker.to });
      record.state = "revoked";
      record.reason = revocationMessage(record.version, revoker);
      return;
    }
    const active = this.active.get(record.run);
    if (active !== undefined && active.version > record.version) record.state = "retired";
    else record.state = record.adapter === null ? "announced" : "staged";
  }
}
