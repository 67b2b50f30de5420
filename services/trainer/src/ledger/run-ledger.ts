/**
 * The trainer keeps its own record of what it signed (its ledger), so that what a bucket writer
 * deletes or alters is put back rather than believed: the trainer never signs a head naming fewer
 * versions or rollback records than it signed before, and each pass (`repair`, run on every
 * publish, rollback, versions read and head refresh) rewrites a rollback record or head the store
 * lost or holds altered. A run it has no ledger for is adopted as the store holds it, once.
 */
import type { RollbackRecord, RunHead, StoreRepair } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import { type AdapterStore, headKey, rollbackKey, type SealedRecord } from "@loracast/shared/store";
import { type LedgerEntry, LedgerFiles } from "./ledger-files.ts";

/**
 * What the store held when last read under the run lock, that a head the trainer signs must not
 * fall below: its verified head (null when none or refused) and how many rollback records it lists.
 */
export interface HeadBasis {
  head: RunHead | null;
  rollbacks: number;
}

/** A head signed by `prepareHead`, its envelope on its way to the store, for `commitHead`. */
export interface PendingHead {
  run: string;
  /** What the ledger records: the head's version (null before any) and rollback record count. */
  counts: LedgerEntry["head"];
  head: RunHead;
  sealed: SealedRecord;
  /** The envelope's upload. */
  envelope: Promise<void>;
}

/** What the ledger needs: the store it guards, where it keeps its files, and how long heads last. */
export interface RunLedgerDeps {
  store: AdapterStore;
  /** The ledger directory, `TRAINER_DATA_DIR/ledger`. */
  dir: string;
  clock: Clock;
  log: Logger;
  /** How long a signed head is valid (TRAINER_HEAD_TTL_S), in milliseconds. */
  headTtlMs: number;
}

const sameBytes = (a: Uint8Array | null, b: Uint8Array | null): boolean =>
  a === null || b === null ? a === b : Buffer.compare(a, b) === 0;

/**
 * The trainer's ledger of signed state per run. Callers serialise calls for one run (the
 * publisher's run lock): each method reads the ledger, the store, and writes both.
 */
export class RunLedger {
  private readonly files: LedgerFiles;
  /** Records rewritten so far, by kind (`loracast_store_records_repaired_total{record}`). */
  readonly repaired = { rollback: 0, head: 0 };

  constructor(private readonly d: RunLedgerDeps) {
    this.files = new LedgerFiles(d.dir);
  }

  /** Every run with a ledger, for the refresh pass (whose store prefix an attacker may have emptied). */
  runs(): Promise<string[]> {
    return this.files.runs();
  }

  /**
   * Compares the store with the ledger and rewrites what it lost or holds altered: each rollback
   * record and its signature envelope, then the head when it is missing, refused, or names fewer
   * versions or rollback records than the ledger. Each repair is logged (warn, naming the key),
   * counted and returned. A run without a ledger is adopted first (logged once); nothing is
   * repaired then.
   */
  async repair(run: string): Promise<StoreRepair[]> {
    const entry = await this.files.get(run);
    if (entry === null) {
      await this.adopt(run);
      return [];
    }
    return (await this.repairEntry(run, entry)).repairs;
  }

  /**
   * `repair`, also returning what the store holds once it is done (`HeadBasis`: the head it read
   * or rewrote, and how many rollback records it lists, listed beside the repair's reads unless it
   * checks rollback records), for a `prepareHead` later under the same run lock: the publisher
   * signs the new version's head from it instead of reading both again.
   */
  async inspect(run: string): Promise<{ repairs: StoreRepair[]; basis: HeadBasis }> {
    const entry = await this.files.get(run);
    if (entry === null) return { repairs: [], basis: (await this.adopt(run)).basis };
    // The listing runs beside the repair only where the repair rewrites no rollback record: one
    // read while its record is being put back could cache the altered bytes' refusal after the
    // repair forgot it (`forgetRollback`).
    const [listed, repaired] =
      entry.rollbacks.length === 0
        ? await Promise.all([this.d.store.listRollbacks(run), this.repairEntry(run, entry)])
        : await this.repairEntry(run, entry).then(
            async (r) => [await this.d.store.listRollbacks(run), r] as const,
          );
    return { repairs: repaired.repairs, basis: { head: repaired.head, rollbacks: listed.length } };
  }

  /** The repair of a run with a ledger (`repair`); also returns the verified head the store holds after it. */
  private async repairEntry(
    run: string,
    entry: LedgerEntry,
  ): Promise<{ repairs: StoreRepair[]; head: RunHead | null }> {
    const repairs: StoreRepair[] = [];
    for (const sealed of entry.rollbacks) {
      const found = await this.d.store.readSealed(sealed.key);
      const signature =
        sealed.signature === null ? null : await this.d.store.objects.get(sealed.signature.key);
      const intact =
        sameBytes(found?.bytes ?? null, sealed.bytes) &&
        sameBytes(signature, sealed.signature?.bytes ?? null);
      if (intact) continue;
      await this.d.store.putSealed(sealed, false);
      this.d.store.forgetRollback(sealed.key);
      repairs.push(
        this.note(
          "rollback",
          sealed.key,
          found === null ? "missing" : sameBytes(found.bytes, sealed.bytes) ? "altered_signature" : "altered",
        ),
      );
    }
    const head = await this.d.store.readHead(run);
    const current = head?.ok === true ? head.value : null;
    const fewer =
      current !== null &&
      ((current.version ?? 0) < (entry.head.version ?? 0) || current.rollbacks < entry.head.rollbacks);
    if (entry.head.version !== null && (current === null || fewer)) {
      const written = await this.signHead(run, null);
      repairs.push(
        this.note("head", headKey(run), head === null ? "missing" : head.ok ? "stale" : "altered"),
      );
      return { repairs, head: written };
    }
    return { repairs, head: current };
  }

  /**
   * Records a rollback record in the ledger (before it is written to the store, so a crash between
   * the two leaves a record the next pass writes), then writes it.
   */
  async writeRollback(record: RollbackRecord): Promise<void> {
    const sealed = this.d.store.sealRollback(record);
    const entry = await this.entry(record.run);
    await this.files.put(record.run, {
      ...entry,
      rollbacks: [...entry.rollbacks.filter((r) => r.key !== sealed.key), sealed],
    });
    await this.d.store.putSealed(sealed, true);
  }

  /**
   * Signs `run`'s head with a fresh expiry: its newest version (at least `version`, the ledger's
   * and the store's verified head's) and its rollback record count (at least the ledger's and the
   * store's). The ledger records it before the store does. Returns the head written.
   */
  async signHead(run: string, version: number | null): Promise<RunHead> {
    const pending = await this.prepareHead(run, version, await this.headBasis(run));
    await this.commitHead(pending);
    return pending.head;
  }

  /** What the store holds that a head must not fall below: its verified head and its rollback records' count. */
  async headBasis(run: string): Promise<HeadBasis> {
    const [head, rollbacks] = await Promise.all([
      this.d.store.readHead(run),
      this.d.store.listRollbacks(run),
    ]);
    return { head: head?.ok === true ? head.value : null, rollbacks: rollbacks.length };
  }

  /**
   * The first half of `signHead`: the head for `version` over `basis` (what the store held, read
   * under the caller's run lock: `inspect` or `headBasis`), signed, and its signature envelope sent.
   * Nothing is recorded and the head itself is not written until `commitHead`, which the caller
   * calls only once the manifest the head names is in the store; a head never committed leaves an
   * envelope nothing refers to.
   */
  async prepareHead(run: string, version: number | null, basis: HeadBasis): Promise<PendingHead> {
    const entry = await this.entry(run);
    const before = basis.head;
    const newest = Math.max(version ?? 0, entry.head.version ?? 0, before?.version ?? 0);
    const counts = { version: newest === 0 ? null : newest, rollbacks: 0 };
    counts.rollbacks = Math.max(
      basis.rollbacks,
      before?.rollbacks ?? 0,
      entry.head.rollbacks,
      entry.rollbacks.length,
    );
    const now = this.d.clock.now();
    const head: RunHead = {
      schema: "loracast.head/v1",
      run,
      ...counts,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.d.headTtlMs).toISOString(),
    };
    const sealed = this.d.store.sealHead(head);
    const envelope = this.d.store.putSignature(sealed);
    // Awaited by `commitHead`; a head abandoned before then must not fail the process.
    envelope.catch(() => undefined);
    return { run, counts, head, sealed, envelope };
  }

  /**
   * Writes a prepared head: once its envelope is in the store, the ledger records it, then the
   * store gets its bytes (a crash in between leaves a ledger the next repair pass writes back).
   */
  async commitHead(pending: PendingHead): Promise<void> {
    await pending.envelope;
    const entry = await this.entry(pending.run);
    await this.files.put(pending.run, { ...entry, head: pending.counts });
    await this.d.store.putSealedObject(pending.sealed, false);
  }

  /** The newest version the ledger knows was published (null when none, or no ledger yet). */
  async newestVersion(run: string): Promise<number | null> {
    return (await this.files.get(run))?.head.version ?? null;
  }

  private async entry(run: string): Promise<LedgerEntry> {
    return (await this.files.get(run)) ?? (await this.adopt(run)).entry;
  }

  /**
   * Builds the run's ledger from what the store holds now (its verified head and rollback records),
   * as the trainer trusted it before it kept a ledger; logs that it did when there was anything.
   * Returns the entry and what it read (`HeadBasis`).
   */
  private async adopt(run: string): Promise<{ entry: LedgerEntry; basis: HeadBasis }> {
    const [head, records] = await Promise.all([this.d.store.readHead(run), this.d.store.listRollbacks(run)]);
    const rollbacks: SealedRecord[] = [];
    for (const r of records) {
      const sealed = await this.d.store.readSealed(rollbackKey(r.run, r.atVersion, r.to));
      if (sealed !== null) rollbacks.push(sealed);
    }
    const version = head?.ok === true ? head.value.version : await this.d.store.newestVerifiedVersion(run);
    const entry: LedgerEntry = {
      head: {
        version,
        rollbacks: Math.max(rollbacks.length, head?.ok === true ? head.value.rollbacks : 0),
      },
      rollbacks,
    };
    await this.files.put(run, entry);
    if (version !== null || rollbacks.length > 0)
      this.d.log.info("ledger adopted the store's state of a run it had no record of", {
        run,
        version,
        rollbacks: rollbacks.length,
      });
    return { entry, basis: { head: head?.ok === true ? head.value : null, rollbacks: records.length } };
  }

  private note(record: StoreRepair["record"], key: string, found: StoreRepair["found"]): StoreRepair {
    this.repaired[record]++;
    const message = `${record} record ${key} was ${found === "missing" ? "missing" : found === "stale" ? "stale (it named fewer versions or rollbacks than the trainer signed)" : "altered"}; rewritten from the trainer's ledger`;
    this.d.log.warn("store record repaired", { record, key, found });
    return { record, key, found, message };
  }
}
