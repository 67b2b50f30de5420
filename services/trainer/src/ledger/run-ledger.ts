/**
 * The trainer keeps its own record of what it signed (its ledger), so that what a bucket writer
 * deletes or alters is put back rather than believed: the trainer never signs a head naming fewer
 * versions or rollback records than it signed before, and each pass (`repair`, run on every
 * publish, rollback, versions read and head refresh) rewrites a rollback record or head the store
 * lost or holds altered. A run it has no ledger for is adopted as the store holds it, once.
 */
import type { RollbackRecord, StoreRepair } from "@loracast/shared/manifest";
import type { Clock, Logger } from "@loracast/shared/platform";
import { type AdapterStore, headKey, rollbackKey, type SealedRecord } from "@loracast/shared/store";
import { type LedgerEntry, LedgerFiles } from "./ledger-files.ts";

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
      await this.signHead(run, null);
      repairs.push(
        this.note("head", headKey(run), head === null ? "missing" : head.ok ? "stale" : "altered"),
      );
    }
    return repairs;
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
   * and the store's verified head's) and its rollback record count (at least the ledger's). The
   * ledger records it before the store does.
   */
  async signHead(run: string, version: number | null): Promise<void> {
    const entry = await this.entry(run);
    const [previous, rollbacks] = await Promise.all([
      this.d.store.readHead(run),
      this.d.store.listRollbacks(run),
    ]);
    const before = previous?.ok === true ? previous.value : null;
    const newest = Math.max(version ?? 0, entry.head.version ?? 0, before?.version ?? 0);
    const head = {
      version: newest === 0 ? null : newest,
      rollbacks: Math.max(
        rollbacks.length,
        before?.rollbacks ?? 0,
        entry.head.rollbacks,
        entry.rollbacks.length,
      ),
    };
    await this.files.put(run, { ...entry, head });
    const now = this.d.clock.now();
    await this.d.store.writeHead({
      schema: "loracast.head/v1",
      run,
      ...head,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.d.headTtlMs).toISOString(),
    });
  }

  /** The newest version the ledger knows was published (null when none, or no ledger yet). */
  async newestVersion(run: string): Promise<number | null> {
    return (await this.files.get(run))?.head.version ?? null;
  }

  private async entry(run: string): Promise<LedgerEntry> {
    return (await this.files.get(run)) ?? (await this.adopt(run));
  }

  /**
   * Builds the run's ledger from what the store holds now (its verified head and rollback records),
   * as the trainer trusted it before it kept a ledger; logs that it did when there was anything.
   */
  private async adopt(run: string): Promise<LedgerEntry> {
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
    return entry;
  }

  private note(record: StoreRepair["record"], key: string, found: StoreRepair["found"]): StoreRepair {
    this.repaired[record]++;
    const message = `${record} record ${key} was ${found === "missing" ? "missing" : found === "stale" ? "stale (it named fewer versions or rollbacks than the trainer signed)" : "altered"}; rewritten from the trainer's ledger`;
    this.d.log.warn("store record repaired", { record, key, found });
    return { record, key, found, message };
  }
}
