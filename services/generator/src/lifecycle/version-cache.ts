import { formatVersionRef } from "@loracast/shared/manifest";
import { manifestKey } from "@loracast/shared/store";
import type { Trigger, VersionRecord } from "./types.ts";

/** A version whose weights were dropped, and the buffer that held them (nothing else refers to it). */
export interface Evicted {
  record: VersionRecord;
  weights: Uint8Array;
}

/** The cache's bounds: versions whose weights are held (`CACHE_MAX_VERSIONS`) and their bytes (`CACHE_MAX_MB` in bytes). */
export interface CacheBounds {
  maxVersions: number;
  maxBytes: number;
}

/**
 * Every version this generator knows, and the memory their weights hold. Only the weights of
 * staged, retired and revoked versions are evictable (their state stays; a request that names one
 * pulls it again): the active version of each run and pinned versions stay, whatever the bound.
 * Weights held outside any version (a local PEFT directory loaded under an alias) count against the
 * same bound through `hold`.
 */
export class VersionCache {
  private readonly records = new Map<string, VersionRecord>();
  /** Bytes held through `hold` (local-directory aliases); never evictable. */
  private outside = 0;

  constructor(private readonly bounds: CacheBounds) {}

  /** The cache key of `run@version`. */
  static key(run: string, version: number): string {
    return formatVersionRef(run, version);
  }

  /** The record of `run@version`, if this generator knows it. */
  get(run: string, version: number): VersionRecord | undefined {
    return this.records.get(VersionCache.key(run, version));
  }

  /** Adds or replaces the record of its version. */
  set(record: VersionRecord): void {
    this.records.set(VersionCache.key(record.run, record.version), record);
  }

  /** Forgets a record (one for a version the store turned out not to have). */
  delete(record: VersionRecord): void {
    this.records.delete(VersionCache.key(record.run, record.version));
  }

  /** Every record, by run name, then version ascending. */
  all(): VersionRecord[] {
    return [...this.records.values()].sort((a, b) =>
      a.run < b.run ? -1 : a.run > b.run ? 1 : a.version - b.version,
    );
  }

  /** The byte bound (CACHE_MAX_MB in bytes). */
  get maxBytes(): number {
    return this.bounds.maxBytes;
  }

  /**
   * Counts `bytes` of weights held outside any version record against the byte bound until the
   * returned release is called (idempotent). The caller has checked that they fit; evictable
   * versions make room for them at once.
   */
  hold(bytes: number): () => void {
    this.outside += bytes;
    this.trim();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.outside -= bytes;
      this.trim();
    };
  }

  /**
   * Bytes of versions' weights that no eviction can free: those of every active version and of the
   * given versions (pinned ones the caller accounts for, such as aliases' targets), each counted
   * once. Request pins are left out (they last one request), and so are bytes held through `hold`.
   */
  versionBytesHeld(pinned: Iterable<VersionRecord>): number {
    const counted = new Set<VersionRecord>(pinned);
    for (const r of this.records.values()) if (r.state === "active") counted.add(r);
    let total = 0;
    for (const r of counted) total += weightBytes(r);
    return total;
  }

  /** Bytes of adapter weights held in memory (versions' weights and those held through `hold`). */
  heldBytes(): number {
    let total = this.outside;
    for (const r of this.records.values()) if (r.adapter !== null) total += r.adapter.weights.byteLength;
    return total;
  }

  /**
   * Drops the weights of least recently used evictable versions until within bounds, leaving room
   * for `incomingBytes` about to be downloaded; returns those evicted, with the weights they held.
   */
  evict(incomingBytes = 0): Evicted[] {
    const held = [...this.records.values()].filter((r) => r.adapter !== null);
    let count = held.length + (incomingBytes > 0 ? 1 : 0);
    let bytes = this.heldBytes() + incomingBytes;
    const evicted: Evicted[] = [];
    const candidates = held
      .filter((r) => (r.state === "staged" || r.state === "retired" || r.state === "revoked") && r.pins === 0)
      .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    for (const r of candidates) {
      if (count <= this.bounds.maxVersions && bytes <= this.bounds.maxBytes) break;
      if (r.adapter === null) continue;
      bytes -= r.adapter.weights.byteLength;
      count--;
      evicted.push({ record: r, weights: r.adapter.weights });
      r.adapter = null;
    }
    return evicted;
  }

  /**
   * Evicts down to the bounds, outside a download. The weights dropped are large and die at once;
   * left to the collector's own pace they stay resident for a while, so where the process runs with
   * --expose-gc, collect once the caller (an activation, a released pin) is done.
   */
  trim(): void {
    if (this.evict().length === 0) return;
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) setImmediate(gc);
  }
}

/** The bytes of a version's weights: held in memory, else as its manifest announced them (0 if unknown). */
function weightBytes(r: VersionRecord): number {
  return r.adapter?.weights.byteLength ?? r.bytes ?? 0;
}

/** A version known by number only: `announced`, nothing read yet. */
export function newVersionRecord(run: string, version: number, trigger: Trigger, now: number): VersionRecord {
  return {
    run,
    version,
    state: "announced",
    pulling: null,
    manifestKey: manifestKey(run, version),
    sha256: null,
    manifestSha256: null,
    bytes: null,
    reason: null,
    manifestRefused: false,
    refusal: null,
    retry: null,
    trigger,
    announcedAt: now,
    publishedAt: null,
    activatedAt: null,
    lastUsedAt: now,
    pins: 0,
    adapter: null,
    phases: null,
  };
}
