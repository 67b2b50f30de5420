/**
 * A bounded cache of what reading a store object back concluded, by key and entity tag (the ETag a
 * listing gives): while the tag is unchanged the object's bytes are, so the verdict stands. Each
 * verdict also expires after `ttlMs`, for what the tag does not cover (a manifest's detached
 * signature envelope lives under another key). Least recently used entries go first.
 */
export class VerdictCache<V> {
  private readonly entries = new Map<string, { etag: string; at: number; verdict: V }>();

  /**
   * @param max most entries kept.
   * @param ttlMs how long a verdict stands, in milliseconds.
   * @param now the clock, epoch milliseconds.
   */
  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The verdict for `key` read at `etag`, if one is cached and young enough. */
  get(key: string, etag: string): V | undefined {
    const hit = this.entries.get(key);
    if (hit === undefined) return undefined;
    this.entries.delete(key);
    if (hit.etag !== etag || this.now() - hit.at >= this.ttlMs) return undefined;
    this.entries.set(key, hit);
    return hit.verdict;
  }

  set(key: string, etag: string, verdict: V): void {
    this.entries.delete(key);
    this.entries.set(key, { etag, at: this.now(), verdict });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.max) break;
      this.entries.delete(oldest);
    }
  }
}
