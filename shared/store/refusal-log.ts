/**
 * The store records a reader refused: counts by kind and code (for /metrics), and a bounded list of
 * the newest refused keys per run (for a generator's `GET /v1/adapters`). The store is a shared
 * medium, so whoever writes to it chooses how many records get refused: the list keeps at most
 * `perRun` keys per run and `total` in all, dropping the oldest.
 */
import type { StoreRecordKind, StoreRefusal, StoreRefusalCode } from "../manifest/index.ts";

/** A store record refused on read: its kind, key, and why (`code` labels the /metrics counter). */
export interface RefusedRecord {
  record: StoreRecordKind;
  key: string;
  code: StoreRefusalCode;
  reason: string;
}

const RUN_OF_KEY = /^runs\/([^/]+)\//;

/**
 * Counts refused store records by kind and code and keeps the newest refused keys per run, bounded
 * by `perRun` and `total` (the oldest go first).
 */
export class RefusalLog {
  /** Refusals so far, by `record` and `code` (a re-read manifest counts each time). */
  private readonly counts = new Map<
    string,
    { record: StoreRecordKind; code: StoreRefusalCode; count: number }
  >();
  /** The newest refused keys, least recently refused first (a Map keeps insertion order). */
  private readonly recent = new Map<string, StoreRefusal>();

  /**
   * @param perRun most keys listed per run.
   * @param total most keys listed in all.
   * @param now the clock, epoch milliseconds.
   */
  constructor(
    private readonly perRun = 10,
    private readonly total = 200,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts `refused` and lists its key as the newest. */
  add(refused: RefusedRecord): void {
    const id = `${refused.record}/${refused.code}`;
    const entry = this.counts.get(id) ?? { record: refused.record, code: refused.code, count: 0 };
    entry.count++;
    this.counts.set(id, entry);

    const now = this.now();
    const before = this.recent.get(refused.key);
    this.recent.delete(refused.key);
    this.recent.set(refused.key, {
      run: RUN_OF_KEY.exec(refused.key)?.[1] ?? "",
      record: refused.record,
      key: refused.key,
      code: refused.code,
      message: refused.reason,
      firstSeenAt: before?.firstSeenAt ?? now,
      lastSeenAt: now,
      count: (before?.count ?? 0) + 1,
    });
    this.trim(this.recent.get(refused.key)?.run ?? "");
  }

  /** Drops `key` from the list: it was read and accepted since (an operator restored it). */
  resolve(key: string): void {
    this.recent.delete(key);
  }

  /** Refusal counts by record kind and code. */
  counters(): { record: StoreRecordKind; code: StoreRefusalCode; count: number }[] {
    return [...this.counts.values()];
  }

  /** The listed refusals, newest first. */
  list(): StoreRefusal[] {
    return [...this.recent.values()].reverse();
  }

  private trim(run: string): void {
    const ofRun = [...this.recent.values()].filter((r) => r.run === run);
    for (const r of ofRun.slice(0, Math.max(0, ofRun.length - this.perRun))) this.recent.delete(r.key);
    for (const key of this.recent.keys()) {
      if (this.recent.size <= this.total) break;
      this.recent.delete(key);
    }
  }
}
