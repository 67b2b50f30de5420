import {
  type AdapterEvent,
  CONFIG_FILE,
  currentVersion,
  isRevoked,
  type RollbackRecord,
  WEIGHTS_FILE,
} from "@loracast/shared/manifest";
import { type ModelSpec, type VerifiedAdapter, verifyAdapterFiles } from "@loracast/shared/model-spec";
import type { Clock, Logger } from "@loracast/shared/platform";
import { err, ok, type Result } from "@loracast/shared/result";
import type { LoraFeeds } from "@loracast/shared/runtime";
import { type AdapterStore, manifestKey, StoreError } from "@loracast/shared/store";
import type { LoadedAdapter, Trigger, VersionRecord } from "./types.ts";
import { type CacheBounds, type Evicted, VersionCache } from "./version-cache.ts";

export interface ManagerDeps {
  store: AdapterStore;
  spec: ModelSpec;
  clock: Clock;
  log: Logger;
  bounds: CacheBounds;
  maxRank: number;
  /** Runs to follow; null follows every run in the store. */
  runs: readonly string[] | null;
  /** Base fingerprints a manifest may name besides `spec.fingerprint` (the same base described another way). */
  alsoAccept?: readonly string[];
  /** Turns a verified adapter into engine feeds at staging; absent when the generator has no engine. */
  prepare?: (adapter: VerifiedAdapter) => LoraFeeds;
  /**
   * Scores a manifest's probe with the staged feeds (next-token log-probabilities along each row),
   * so a version whose numbers differ from the trainer's beyond `probeTolerance` never activates.
   */
  probe?: { score: (feeds: LoraFeeds, tokens: readonly number[]) => Promise<number[]>; tolerance: number };
}

/** How many not-yet-failed versions one reconcile pass tries, newest first, before it gives up on a run. */
const CANDIDATES_PER_PASS = 3;

/**
 * The generator's adapter lifecycle. Webhooks and reconcile both end in `sync`, which pulls a
 * version, verifies it and activates it if it is newer than the active one (or if a rollback revoked
 * the active one). Activation is one synchronous pointer swap, so a request either sees the old
 * version or the new one, never a mixture.
 */
export class AdapterManager {
  readonly cache: VersionCache;
  private readonly active = new Map<string, VersionRecord>();
  private readonly inFlight = new Map<string, Promise<Result<VersionRecord, string>>>();
  private readonly rollbacks = new Map<string, RollbackRecord[]>();
  private readonly knownVersions = new Map<string, number[]>();
  readonly stats = { activations: 0, failures: 0, reconciles: 0, reconcileErrors: 0 };
  private resolvedOnce = false;

  constructor(private readonly d: ManagerDeps) {
    this.cache = new VersionCache(d.bounds);
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
    const current = this.active.get(event.run);
    if (current !== undefined && event.version <= current.version && !this.isRevoked(current)) {
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
      const runs = this.d.runs ?? (await this.d.store.listRuns());
      await Promise.all(runs.map((run) => this.reconcileRun(run, "reconcile")));
      this.resolvedOnce = true;
    } catch (e) {
      this.stats.reconcileErrors++;
      this.d.log.warn("reconcile failed", { error: e });
    }
  }

  private async reconcileRun(run: string, trigger: Trigger): Promise<void> {
    const known = this.knownVersions.get(run) ?? [];
    const fresh = await this.d.store.listVersions(run, known[known.length - 1]);
    const versions = [...known, ...fresh];
    this.knownVersions.set(run, versions);
    const rollbacks = await this.d.store.listRollbacks(run);
    this.rollbacks.set(run, rollbacks);
    const target = currentVersion(versions, rollbacks);
    if (target === null) return;
    const current = this.active.get(run);
    const mayReplace = (v: number) => current === undefined || v > current.version || this.isRevoked(current);
    let tried = 0;
    for (let i = versions.length - 1; i >= 0 && tried < CANDIDATES_PER_PASS; i--) {
      const v = versions[i] as number;
      if (isRevoked(v, rollbacks)) continue;
      if (!mayReplace(v) || current?.version === v) return;
      if (this.cache.get(run, v)?.state === "failed") continue;
      tried++;
      const r = await this.sync(run, v, trigger);
      if (r.ok) return;
    }
  }

  /**
   * Makes sure `run@version` is downloaded and verified, for a request that names it. Does not
   * activate it: serving a pinned older version is not a downgrade of the run.
   */
  async ensure(run: string, version: number): Promise<Result<VersionRecord, string>> {
    const existing = this.cache.get(run, version);
    if (existing?.state === "failed") return err(existing.reason ?? "failed");
    return this.load(run, version, "on-demand");
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
      this.releaseEvicted(this.cache.evict());
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
    if (records != null) this.rollbacks.set(run, records);
    if (this.isRevoked(record)) {
      this.d.log.info("revoked version not activated", { run, version });
      return err("revoked by a rollback");
    }
    const current = this.active.get(run);
    const isRollback = current !== undefined && version < current.version && this.isRevoked(current);
    if (current === undefined || version > current.version || isRollback)
      this.activate(record, current, isRollback);
    return ok(record);
  }

  private activate(record: VersionRecord, previous: VersionRecord | undefined, isRollback: boolean): void {
    const now = this.d.clock.now();
    record.state = "active";
    record.activatedAt = now;
    record.lastUsedAt = now;
    this.active.set(record.run, record);
    if (previous !== undefined && previous !== record) {
      previous.state = "retired";
      previous.lastUsedAt = now;
    }
    this.stats.activations++;
    this.releaseEvicted(this.cache.evict());
    this.d.log.info(isRollback ? "adapter rolled back" : "adapter activated", {
      run: record.run,
      version: record.version,
      sha256: record.sha256,
      previous: previous?.version ?? null,
      ms: now - record.announcedAt,
      ...record.phases,
    });
  }

  /**
   * Weights evicted by an activation or a released pin (not those a download reuses) are large and
   * die all at once; left to the collector's own pace, they stay resident for a while. Where the
   * process runs with --expose-gc, collect once the activation (or release) that evicted them is done.
   */
  private releaseEvicted(evicted: Evicted[]): void {
    if (evicted.length === 0) return;
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) setImmediate(gc);
  }

  private isRevoked(record: VersionRecord): boolean {
    return isRevoked(record.version, this.rollbacks.get(record.run) ?? []);
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
    const record: VersionRecord = this.cache.get(run, version) ?? {
      run,
      version,
      state: "announced",
      manifestKey: manifestKey(run, version),
      sha256: null,
      manifestSha256: null,
      bytes: null,
      reason: null,
      trigger,
      announcedAt: now,
      activatedAt: null,
      lastUsedAt: now,
      pins: 0,
      adapter: null,
      phases: null,
    };
    record.trigger = trigger;
    record.announcedAt = now;
    record.reason = null;
    this.cache.set(record);
    try {
      const adapter = await this.fetchAndVerify(record, manifestSha256);
      if (!adapter.ok) return this.fail(record, adapter.error);
      record.adapter = adapter.value;
      record.state = "staged";
      return ok(record);
    } catch (e) {
      // The store is down or the download broke off: nothing is wrong with the version itself, so
      // it goes back to announced and the next reconcile pass tries again.
      record.state = "announced";
      record.reason = e instanceof StoreError ? e.message : `unexpected: ${(e as Error).message}`;
      this.d.log.warn("adapter pull interrupted", { run, version, reason: record.reason });
      if (!(e instanceof StoreError))
        this.d.log.error("unexpected pipeline error", { error: e, stack: (e as Error).stack });
      return err(record.reason);
    }
  }

  private async fetchAndVerify(
    record: VersionRecord,
    manifestSha256?: string,
  ): Promise<Result<LoadedAdapter, string>> {
    record.state = "downloading";
    const t0 = this.d.clock.now();
    const read = await this.d.store.readManifest(record.manifestKey, manifestSha256);
    const tManifest = this.d.clock.now();
    if (read === null)
      throw new StoreError("unavailable", `manifest ${record.manifestKey} is not in the store (yet)`);
    if (!read.ok) return err(read.error.reason);
    const { manifest } = read.value;
    record.manifestSha256 = read.value.sha256;
    const weightsEntry = manifest.adapter.files.find((f) => f.name === WEIGHTS_FILE);
    const configEntry = manifest.adapter.files.find((f) => f.name === CONFIG_FILE);
    if (weightsEntry === undefined || configEntry === undefined) {
      return err(`manifest lists no ${weightsEntry === undefined ? WEIGHTS_FILE : CONFIG_FILE}`);
    }
    record.sha256 = weightsEntry.sha256;
    record.bytes = weightsEntry.bytes;
    const fingerprint = manifest.base.fingerprint;
    if (
      fingerprint !== null &&
      fingerprint !== this.d.spec.fingerprint &&
      !this.d.alsoAccept?.includes(fingerprint)
    ) {
      return err(
        `base fingerprint ${fingerprint} does not match this generator's base ${this.d.spec.fingerprint}`,
      );
    }
    // Make room first, so the bound holds while the new weights download, not only after. Versions
    // of a run are usually all the same size: an evicted buffer of that size receives the download,
    // so there is no fresh memory to page in and no garbage for the collector.
    const into = this.cache
      .evict(weightsEntry.bytes)
      .find((e) => e.weights.byteLength === weightsEntry.bytes);
    const [weights, configBytes] = await Promise.all([
      this.d.store.downloadBlob(weightsEntry, into === undefined ? {} : { into: into.weights }),
      this.d.store.downloadBlob(configEntry),
    ]);
    if (!weights.ok) return err(weights.error.reason);
    if (!configBytes.ok) return err(configBytes.error.reason);

    record.state = "verifying";
    const tDownload = this.d.clock.now();
    const checked = verifyAdapterFiles(
      this.d.spec,
      new TextDecoder().decode(configBytes.value),
      weights.value,
      {
        maxRank: this.d.maxRank,
      },
    );
    if (!checked.ok) return checked;
    const { verified, config } = checked.value;
    const feeds = this.d.prepare?.(verified) ?? null;
    if (feeds !== null && manifest.probe !== null && this.d.probe !== undefined) {
      const { score, tolerance } = this.d.probe;
      for (const [row, tokens] of manifest.probe.tokens.entries()) {
        const want = manifest.probe.logprobs[row] ?? [];
        const got = await score(feeds, tokens);
        if (got.length !== want.length) {
          return err(`probe row ${row}: ${want.length} logprobs for ${tokens.length} tokens`);
        }
        const diff = got.reduce((m, g, i) => Math.max(m, Math.abs(g - (want[i] ?? Number.NaN))), 0);
        if (!(diff <= tolerance)) {
          return err(
            `probe logprobs differ from the trainer's by ${diff.toPrecision(3)} (tolerance ${tolerance})`,
          );
        }
      }
    }
    record.phases = {
      manifestMs: tManifest - t0,
      downloadMs: tDownload - tManifest,
      verifyMs: this.d.clock.now() - tDownload,
    };
    return ok({ weights: weights.value, verified, config: config.raw as Record<string, unknown>, feeds });
  }

  private fail(record: VersionRecord, reason: string): Result<VersionRecord, string> {
    record.state = "failed";
    record.reason = reason;
    record.adapter = null;
    this.stats.failures++;
    const active = this.active.get(record.run);
    this.d.log.error("adapter failed verification", {
      run: record.run,
      version: record.version,
      reason,
      stillServing: active?.version ?? null,
    });
    return err(reason);
  }
}
