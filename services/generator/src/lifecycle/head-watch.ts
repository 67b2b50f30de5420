/**
 * Freeze and rollback detection (TUF's timestamp role): each reconcile pass reads the run's signed
 * head and compares the newest head seen with what the store lists. A bucket writer cannot forge a
 * head, but can hide the newest manifests or rollback records, or put back an older signed head;
 * each shows here as a finding, logged once and reported in /metrics.
 */
import type { RunHead } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import type { Result } from "@loracast/shared/result";
import { type AdapterStore, headKey, type RefusedRecord, sha256Hex } from "@loracast/shared/store";

type HeadRead = Result<RunHead, RefusedRecord>;

/**
 * A run's head as one read found it (`HeadWatch.read`): null when the store holds none. `began`
 * orders the read against the others of this watch (see `HeadWatch.check`).
 */
export interface HeadReading {
  read: HeadRead | null;
  /** How many reads this watch had begun when this one began, itself included. */
  began: number;
}

/** What a pass found wrong with a run's store state against its newest signed head. */
export type HeadFinding =
  | "stale_head"
  | "expired_head"
  | "hidden_versions"
  | "hidden_rollbacks"
  | "missing_head";

/**
 * How long a run's head may be missing (or refused) while the store lists versions before it is
 * reported. The trainer writes a version's manifest first and its head second, so a pass that reads
 * in between finds a new run's versions and no head yet; that run is deferred (nothing activated,
 * named versions refused), not reported, and checked again on the next pass.
 */
export const HEAD_GRACE_MS = 5000;

/**
 * Reads each run's signed head during reconcile, keeps the newest one seen per run, and reports
 * what the store hides against it (`HeadFinding`): a run with a finding is held, so nothing of it is
 * activated until the store is repaired.
 */
export class HeadWatch {
  private readonly newest = new Map<string, RunHead>();
  private readonly findings = new Map<string, Map<HeadFinding, string>>();
  /** The head bytes read last per run (sha256) and what verifying them gave. */
  private readonly lastRead = new Map<string, { sha256: string; read: HeadRead }>();
  /** When each run's store was first seen listing versions without a valid head (ms), until one appears. */
  private readonly headlessSince = new Map<string, number>();
  /** Reads begun so far (`HeadReading.began`). */
  private begun = 0;
  /** Per run, `begun` when its newest head was taken: a read that began before cannot contradict it. */
  private readonly newestTakenAt = new Map<string, number>();

  /**
   * @param requireHead whether a run with versions needs a valid signed head (signatures are required):
   *   without one, no hidden rollback can be ruled out, so the run is held.
   */
  constructor(
    private readonly store: AdapterStore,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly requireHead: boolean,
  ) {}

  /** Current findings of every run, with their messages (the /metrics gauge). */
  all(): { run: string; finding: HeadFinding; message: string }[] {
    return [...this.findings].flatMap(([run, m]) =>
      [...m].map(([finding, message]) => ({ run, finding, message })),
    );
  }

  /**
   * Why `run` is held, or null. A signed head counts more rollback records than the store holds
   * valid ones (`hidden_rollbacks`), or the store lists versions but this generator knows no valid
   * signed head of the run (`missing_head`, or within `HEAD_GRACE_MS` of first finding none): some
   * revocation may be hidden, so any version might be one it revoked. Such a run fails closed:
   * nothing new is activated or pulled by name until the store is repaired (a valid head appears).
   */
  held(run: string): string | null {
    const found = this.findings.get(run);
    const hidden = found?.get("hidden_rollbacks");
    if (hidden !== undefined) return hidden;
    if (this.newest.has(run) || !this.headlessSince.has(run)) return null;
    return (
      found?.get("missing_head") ??
      `the store lists versions of ${run} but holds no valid signed head yet (checked again next pass)`
    );
  }

  /**
   * Checks `reading` (`read`), and the newest head seen, against the versions listed and the
   * number of rollback records accepted, both listed after the reading. A refused head is counted
   * by the store and otherwise ignored. A head older than the newest one seen is `stale_head` only
   * when its read began after that newest one was taken: passes of one run may overlap (a webhook's
   * and the periodic one), and a read that began earlier may have been answered before the trainer
   * wrote the newer head.
   */
  check(run: string, reading: HeadReading, listed: readonly number[], rollbacks: number): void {
    const { read } = reading;
    const found = new Map<HeadFinding, string>();
    let head = this.newest.get(run);
    if (read?.ok === true) {
      if (head === undefined || read.value.issuedAt >= head.issuedAt) {
        head = read.value;
        this.newest.set(run, head);
        this.newestTakenAt.set(run, this.begun);
      } else if (reading.began > (this.newestTakenAt.get(run) ?? 0)) {
        found.set(
          "stale_head",
          `the store's head of ${run} (issued ${read.value.issuedAt}) is older than one already seen (issued ${head.issuedAt}): an older signed head was put back`,
        );
      }
    }
    const missing = this.missingHead(run, read, listed, head);
    if (missing !== null) found.set("missing_head", missing);
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

  /**
   * Reads `run`'s head for a pass, before the pass lists the run's versions and rollback records:
   * the trainer writes a version's manifest, and a rollback record, before the head that counts it,
   * so listings made after this read hold everything the head names. Listed first, a publish that
   * landed between the listing and the read showed as `hidden_versions` ("store state is stale")
   * on a healthy store.
   *
   * The head (`AdapterStore.readHead`) is judged once per distinct bytes: a pass reads it raw (one
   * small GET) and, when its sha256 is that of the bytes read last, reuses that verdict, so a
   * refused head is logged and counted once, not every pass, and a valid one costs no signature read.
   */
  async read(run: string): Promise<HeadReading> {
    const began = ++this.begun;
    return { read: await this.readHead(run), began };
  }

  private async readHead(run: string): Promise<HeadRead | null> {
    const key = headKey(run);
    const bytes = await this.store.objects.get(key);
    if (bytes === null) {
      this.lastRead.delete(run);
      return null;
    }
    const sha256 = sha256Hex(bytes);
    const last = this.lastRead.get(run);
    if (last?.sha256 === sha256) return last.read;
    const read = await this.store.readHead(run);
    if (read === null) return null;
    // Remembered only when the head did not change around the verifying read (it judged these bytes).
    const after = await this.store.objects.get(key);
    if (after !== null && sha256Hex(after) === sha256) this.lastRead.set(run, { sha256, read });
    return read;
  }

  /**
   * The `missing_head` message once the store has listed versions without a valid head for
   * `HEAD_GRACE_MS` (null before, and once a valid head is read). With a head seen earlier the
   * checks go on against it (it is signed; hiding the store's copy hides nothing from this
   * generator), so only a generator that never saw one is held by it.
   */
  private missingHead(
    run: string,
    read: HeadRead | null,
    listed: readonly number[],
    seen: RunHead | undefined,
  ): string | null {
    if (!this.requireHead || read?.ok === true || listed.length === 0) {
      this.headlessSince.delete(run);
      return null;
    }
    const now = this.clock.now();
    const since = this.headlessSince.get(run) ?? now;
    this.headlessSince.set(run, since);
    if (now - since < HEAD_GRACE_MS) return null;
    const why = read === null ? "holds no head" : `holds a head it refused (${read.error.code})`;
    const store = `the store lists versions of ${run} up to v${listed.at(-1)} but ${why}`;
    return seen === undefined
      ? `${store}: a hidden rollback record cannot be ruled out, so no version is trusted until a valid signed head appears`
      : `${store}; checked against the newest signed head seen (issued ${seen.issuedAt})`;
  }
}
