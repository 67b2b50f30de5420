/**
 * Freeze and rollback detection (TUF's timestamp role): each reconcile pass reads the run's signed
 * head and compares the newest head seen with what the store lists. A bucket writer cannot forge a
 * head, but can hide the newest manifests or rollback records, or put back an older signed head;
 * each shows here as a finding, logged once and reported in /metrics.
 */
import type { RunHead } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import type { AdapterStore } from "@loracast/shared/store";

/** What a pass found wrong with a run's store state against its newest signed head. */
export type HeadFinding = "stale_head" | "expired_head" | "hidden_versions" | "hidden_rollbacks";

export class HeadWatch {
  private readonly newest = new Map<string, RunHead>();
  private readonly findings = new Map<string, Map<HeadFinding, string>>();

  constructor(
    private readonly store: AdapterStore,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Current findings of every run, with their messages (the /metrics gauge). */
  all(): { run: string; finding: HeadFinding; message: string }[] {
    return [...this.findings].flatMap(([run, m]) =>
      [...m].map(([finding, message]) => ({ run, finding, message })),
    );
  }

  /**
   * Why `run` is held, or null: a signed head counts more rollback records than the store holds
   * valid ones, so some revocation is hidden and any version might be one it revoked. Such a run
   * fails closed: nothing new is activated or pulled by name until the store is repaired.
   */
  held(run: string): string | null {
    return this.findings.get(run)?.get("hidden_rollbacks") ?? null;
  }

  /**
   * Reads `run`'s head and checks it, and the newest one seen, against the versions listed and the
   * number of rollback records accepted. A refused head is counted by the store and otherwise ignored.
   */
  async check(run: string, listed: readonly number[], rollbacks: number): Promise<void> {
    const read = await this.store.readHead(run);
    const found = new Map<HeadFinding, string>();
    let head = this.newest.get(run);
    if (read?.ok === true) {
      if (head !== undefined && read.value.issuedAt < head.issuedAt) {
        found.set(
          "stale_head",
          `the store's head of ${run} (issued ${read.value.issuedAt}) is older than one already seen (issued ${head.issuedAt}): an older signed head was put back`,
        );
      } else head = read.value;
      this.newest.set(run, head);
    }
    if (head !== undefined) {
      const latest = listed.at(-1) ?? 0;
      if (Date.parse(head.expiresAt) < this.clock.now())
        found.set(
          "expired_head",
          `the newest signed head of ${run} expired at ${head.expiresAt}: the store may be frozen`,
        );
      if (head.version !== null && head.version > latest)
        found.set(
          "hidden_versions",
          `the signed head of ${run} names v${head.version}, the store lists up to v${latest}: newer versions are hidden`,
        );
      if (head.rollbacks > rollbacks)
        found.set(
          "hidden_rollbacks",
          `the signed head of ${run} counts ${head.rollbacks} rollback records, the store holds ${rollbacks} valid ones`,
        );
    }
    const before = this.findings.get(run);
    for (const [finding, message] of found)
      if (!before?.has(finding)) this.log.warn("store state is stale", { run, finding, message });
    if (found.size === 0) this.findings.delete(run);
    else this.findings.set(run, found);
  }
}
