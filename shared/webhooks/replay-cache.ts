import type { Clock } from "../platform/index.ts";

/**
 * Remembers webhook ids for as long as their timestamps stay acceptable, so a captured request
 * cannot be replayed inside the tolerance window. Bounded: the oldest ids go first, and an id can
 * only be forgotten once its timestamp has expired anyway, unless the bound forces it.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
  ) {}

  /** Records `id`; false when it was already seen and is still remembered. */
  remember(id: string): boolean {
    const now = this.clock.now();
    for (const [k, expires] of this.seen) {
      if (expires > now && this.seen.size < this.maxEntries) break;
      this.seen.delete(k);
    }
    if (this.seen.has(id)) return false;
    this.seen.set(id, now + this.ttlMs);
    return true;
  }
}
