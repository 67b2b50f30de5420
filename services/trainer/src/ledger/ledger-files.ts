/**
 * The trainer's own record of what it signed, one JSON file per run under
 * `TRAINER_DATA_DIR/ledger/<run>.json`: the newest head it signed (version, rollback count) and
 * every rollback record it wrote, bytes and signature envelope. Each change is written to a temp
 * file and renamed over the old one, so a crash leaves the old record or the new one, never half.
 */
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { SealedRecord } from "@loracast/shared/store";
import { z } from "zod";
import { TrainerError } from "../errors.ts";

/** What a run's ledger holds. */
export interface LedgerEntry {
  /** The newest head signed: its version (null before any) and how many rollback records it counts. */
  head: { version: number | null; rollbacks: number };
  /** Every rollback record written (or adopted), exactly as written. */
  rollbacks: SealedRecord[];
}

const LEDGER_SCHEMA = "loracast.ledger/v1";

const sealedJson = z.object({
  key: z.string(),
  bytes: z.base64(),
  signature: z.object({ key: z.string(), bytes: z.base64() }).nullable(),
});

const ledgerFileSchema = z.object({
  schema: z.literal(LEDGER_SCHEMA),
  run: z.string(),
  head: z.object({
    version: z.number().int().positive().nullable(),
    rollbacks: z.number().int().nonnegative(),
  }),
  rollbacks: z.array(sealedJson),
});

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");
const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "base64"));

/** Reads and writes the per-run ledger files in one directory; caches what it read. */
export class LedgerFiles {
  private readonly cache = new Map<string, LedgerEntry | null>();

  /** @param dir the ledger directory (`TRAINER_DATA_DIR/ledger`), created on the first write. */
  constructor(private readonly dir: string) {}

  /**
   * The run's ledger; null when this trainer has none for it (a new data dir, or a run published
   * before the ledger existed). A file that does not parse is an error (TrainerError `internal`,
   * naming the file and what to do): the trainer must not silently forget what it signed.
   */
  async get(run: string): Promise<LedgerEntry | null> {
    if (this.cache.has(run)) return this.cache.get(run) ?? null;
    let text: string;
    try {
      text = await readFile(this.path(run), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      this.cache.set(run, null);
      return null;
    }
    let file: z.infer<typeof ledgerFileSchema>;
    try {
      file = ledgerFileSchema.parse(JSON.parse(text));
    } catch (e) {
      throw new TrainerError(
        "internal",
        `the trainer's ledger of run ${run} (${this.path(run)}) is damaged (${(e as Error).message.slice(0, 200)}): restore it from a backup, or move it aside to adopt what the store holds`,
      );
    }
    const entry: LedgerEntry = {
      head: file.head,
      rollbacks: file.rollbacks.map((r) => ({
        key: r.key,
        bytes: unb64(r.bytes),
        signature: r.signature === null ? null : { key: r.signature.key, bytes: unb64(r.signature.bytes) },
      })),
    };
    this.cache.set(run, entry);
    return entry;
  }

  /** Replaces the run's ledger, atomically (temp file, then rename). */
  async put(run: string, entry: LedgerEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file: z.infer<typeof ledgerFileSchema> = {
      schema: LEDGER_SCHEMA,
      run,
      head: entry.head,
      rollbacks: entry.rollbacks.map((r) => ({
        key: r.key,
        bytes: b64(r.bytes),
        signature: r.signature === null ? null : { key: r.signature.key, bytes: b64(r.signature.bytes) },
      })),
    };
    const path = this.path(run);
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`);
    await rename(tmp, path);
    this.cache.set(run, entry);
  }

  /** Every run this trainer holds a ledger for. */
  async runs(): Promise<string[]> {
    const names = await readdir(this.dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return [] as string[];
      throw e;
    });
    return names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -".json".length));
  }

  /** Run names are checked by `runName` (letters, digits, dashes) before they reach a path. */
  private path(run: string): string {
    return join(this.dir, `${run}.json`);
  }
}
