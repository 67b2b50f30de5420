import type { z } from "zod";
import {
  type AdapterFile,
  CONFIG_FILE,
  currentVersion,
  MANIFEST_SCHEMA,
  type RollbackRecord,
  type RunHead,
  rollbackRecordSchema,
  runHeadSchema,
  type VersionManifest,
  WEIGHTS_FILE,
} from "../manifest/index.ts";
import type { Result } from "../result/index.ts";
import { signatureKey } from "../signing/index.ts";
import type {
  AdapterStoreOptions,
  AdapterUpload,
  IntegrityFailure,
  ManifestDraft,
  ManifestRefusal,
  SealedRecord,
  StoredManifest,
} from "./adapter-store-types.ts";
import { blobFile, downloadBlob, putBlob, sha256Hex } from "./blobs.ts";
import {
  headKey,
  MAX_VERSION,
  manifestKey,
  rollbackKey,
  rollbacksPrefix,
  runsPrefix,
  versionOfKey,
  versionsPrefix,
} from "./keys.ts";
import type { ObjectStore } from "./object-store.ts";
import { RefusalLog, type RefusedRecord } from "./refusal-log.ts";
import { parseManifest, parseSignedRecord, signatureFailure } from "./signed-records.ts";
import { VerdictCache } from "./verdict-cache.ts";

const MAX_VERSION_RACES = 8;

/**
 * The content-addressed adapter store: blobs by sha256, immutable per-version manifests and
 * rollback records. The latest version is found by listing, never through a mutable pointer.
 */
export class AdapterStore {
  private readonly rollbackRecords = new Map<string, RollbackRecord>();
  /** Rollback records refused, by key; immutable like the accepted ones, so each is read once. */
  private readonly refusedRollbacks = new Map<string, RefusedRecord>();
  /** Every record refused on read: counts by kind and code, and the newest refused keys per run. */
  readonly refusals = new RefusalLog();

  /** Manifest verdicts by key: the entity tag and time they were read at (see `readManifestAt`). */
  private readonly judged = new VerdictCache<Result<StoredManifest, ManifestRefusal>>(4096, 60_000);

  /** Corrupt blobs rewritten by publishes so far (`loracast_store_blobs_repaired_total`). */
  blobsRepaired = 0;

  constructor(
    readonly objects: ObjectStore,
    private readonly options: AdapterStoreOptions = {},
  ) {}

  /** Whether reads require signatures by trusted keys. */
  get verifiesSignatures(): boolean {
    return this.options.trusted != null;
  }

  /**
   * Counts and reports a refused record: those this store refuses itself, and those a reader
   * refuses for its own checks (a generator's size bound), so that one counter sees them all.
   */
  reportRefusal(refused: RefusedRecord): void {
    this.refusals.add(refused);
    this.options.onRefused?.(refused);
  }

  /** `bytes` to be written under `key`, with their signature envelope when this store signs. */
  seal(key: string, bytes: Uint8Array): SealedRecord {
    const envelope = this.options.signer?.envelope(bytes);
    return {
      key,
      bytes,
      signature:
        envelope === undefined ? null : { key: signatureKey(envelope.sha256), bytes: envelope.bytes },
    };
  }

  /**
   * Writes a sealed record: its signature envelope first, then its bytes (with `ifNoneMatch`,
   * only where the key is free, on servers that enforce it).
   */
  async putSealed(sealed: SealedRecord, ifNoneMatch: boolean): Promise<"written" | "exists"> {
    // The envelope lives under the sha256 of the bytes it signs, so it can go first: a reader that
    // finds the object finds its signature, and a publisher that loses a version race leaves only
    // an envelope nothing refers to.
    await this.putSignature(sealed);
    return this.putSealedObject(sealed, ifNoneMatch);
  }

  /**
   * Writes a sealed record's signature envelope alone (nothing when unsigned). It may go up long
   * before the record (the trainer sends a head's envelope beside its manifest): nothing refers to
   * an envelope until an object with the bytes it signs exists.
   */
  async putSignature(sealed: SealedRecord): Promise<void> {
    if (sealed.signature === null) return;
    await this.objects.put(sealed.signature.key, sealed.signature.bytes, { contentType: "application/json" });
  }

  /**
   * Writes a sealed record's bytes alone, for a caller whose `putSignature` of it has completed
   * (`putSealed` otherwise): with `ifNoneMatch`, only where the key is free, on servers that enforce it.
   */
  putSealedObject(sealed: SealedRecord, ifNoneMatch: boolean): Promise<"written" | "exists"> {
    return this.objects.put(sealed.key, sealed.bytes, { ifNoneMatch, contentType: "application/json" });
  }

  /**
   * What the store holds under `key` and under its signature key, as a sealed record (the
   * signature null when there is none); null when `key` holds nothing.
   */
  async readSealed(key: string): Promise<SealedRecord | null> {
    const bytes = await this.objects.get(key);
    if (bytes === null) return null;
    const sigKey = signatureKey(sha256Hex(bytes));
    const sig = await this.objects.get(sigKey);
    return { key, bytes, signature: sig === null ? null : { key: sigKey, bytes: sig } };
  }

  /**
   * Forgets what was read under a rollback record's key (accepted or refused), so the next
   * `listRollbacks` reads it again: after the record was rewritten (a repair).
   */
  forgetRollback(key: string): void {
    this.rollbackRecords.delete(key);
    this.refusedRollbacks.delete(key);
    this.refusals.resolve(key);
  }

  /**
   * Uploads a blob unless the store already holds exactly these bytes at its address (`putBlob` in
   * blobs.ts, `knownSha256` as there); a corrupt copy found there is rewritten, counted
   * (`blobsRepaired`) and reported to `onBlobRepaired`.
   */
  putBlob(
    bytes: Uint8Array,
    contentType?: string,
    knownSha256?: string,
  ): Promise<{ file: Omit<AdapterFile, "name">; uploaded: boolean }> {
    return putBlob(
      this.objects,
      bytes,
      contentType,
      (repair) => {
        this.blobsRepaired++;
        this.options.onBlobRepaired?.(repair);
      },
      knownSha256,
    );
  }

  /**
   * Uploads an adapter's two blobs side by side (those already in the store are not sent again)
   * and returns their manifest entries, config first. `weightsSha256`: the weights' sha256 where
   * the caller computed it from these bytes (see `putBlob`).
   */
  async putAdapterBlobs(
    configBytes: Uint8Array,
    weights: Uint8Array,
    weightsSha256?: string,
  ): Promise<AdapterFile[]> {
    const [config, weightsFile] = await Promise.all([
      this.putBlob(configBytes, "application/json"),
      this.putBlob(weights, undefined, weightsSha256),
    ]);
    return [
      { name: CONFIG_FILE, ...config.file },
      { name: WEIGHTS_FILE, ...weightsFile.file },
    ];
  }

  /**
   * The manifest entries `putAdapterBlobs` returns for these two files (config first), known
   * before their upload ends: a publisher seals the manifest naming them while they go up.
   */
  adapterFiles(configBytes: Uint8Array, weights: Uint8Array, weightsSha256?: string): AdapterFile[] {
    return [
      { name: CONFIG_FILE, ...blobFile(configBytes) },
      { name: WEIGHTS_FILE, ...blobFile(weights, weightsSha256) },
    ];
  }

  /**
   * Publishes an adapter as the run's next version: uploads its two blobs (those already in the
   * store are not sent again), then writes the manifest that names them. `lap` is called after
   * each of the two phases (the caller times them).
   */
  async publishAdapter(
    run: string,
    upload: AdapterUpload,
    latestHint?: number | null,
    lap?: (phase: "blobs" | "manifest") => void,
  ): Promise<StoredManifest> {
    const files = await this.putAdapterBlobs(upload.configBytes, upload.weights);
    lap?.("blobs");
    const stored = await this.publishVersion(run, { ...upload.draft, adapter: { files } }, latestHint);
    lap?.("manifest");
    return stored;
  }

  /** Every version number of a run, ascending; only those after `after` when given. */
  async listVersions(run: string, after?: number): Promise<number[]> {
    const keys = await this.objects.list(
      versionsPrefix(run),
      after === undefined ? undefined : manifestKey(run, after),
    );
    return keys.map(versionOfKey).filter((v): v is number => v !== null);
  }

  /** Every version of a run, ascending, with its manifest's key and entity tag (one listing). */
  async listVersionEntries(run: string): Promise<{ version: number; key: string; etag: string }[]> {
    const entries = await this.objects.listEntries(versionsPrefix(run));
    const out: { version: number; key: string; etag: string }[] = [];
    for (const e of entries) {
      const version = versionOfKey(e.key);
      if (version !== null) out.push({ version, key: e.key, etag: e.etag });
    }
    return out;
  }

  /**
   * `readManifest` for a key a listing gave with entity tag `etag`, answered from a bounded cache
   * while the tag is unchanged (and the verdict younger than a minute): an unchanged store then
   * costs a versions read one listing, however many manifests (or junk objects) it holds. A
   * refusal answered from the cache is not counted or reported again.
   */
  async readManifestAt(key: string, etag: string): Promise<Result<StoredManifest, ManifestRefusal> | null> {
    const hit = this.judged.get(key, etag);
    if (hit !== undefined) return hit;
    const verdict = await this.readManifest(key);
    if (verdict !== null) this.judged.set(key, etag, verdict);
    return verdict;
  }

  /** The run's highest listed version number, verified or not; null when none is listed. */
  async latestVersion(run: string): Promise<number | null> {
    const all = await this.listVersions(run);
    return all.length === 0 ? null : (all[all.length - 1] as number);
  }

  /**
   * The run's newest version whose manifest verifies (signature, schema, key), or null: what an
   * unsigned object at a higher key cannot move. Reads manifests from the newest down.
   */
  async newestVerifiedVersion(run: string): Promise<number | null> {
    const entries = await this.listVersionEntries(run);
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as { version: number; key: string; etag: string };
      if ((await this.readManifestAt(e.key, e.etag))?.ok === true) return e.version;
    }
    return null;
  }

  /**
   * Writes the run's next manifest: the version after `latestHint` (default: the newest verified
   * one, so an unverified object under a higher key does not move the numbering). Where the key
   * is taken, a manifest there that verifies is another publisher's (the next key is tried), and
   * anything else (unsigned, foreign, malformed, misplaced) can never be served and is overwritten.
   * With conditional writes the server settles races between publishers; without them (s3rver),
   * callers must serialise publishes to a run themselves. Throws past `MAX_VERSION`.
   *
   * `options.ready` (the upload of the blobs the draft names) is awaited before the manifest's
   * bytes are written, and its failure is thrown: its signature envelope and the existence check
   * go up meanwhile, so a publish whose blobs are still uploading pays one round trip after them.
   * An envelope written for a manifest that never follows is one nothing refers to, as a lost race
   * leaves.
   */
  async publishVersion(
    run: string,
    draft: ManifestDraft,
    latestHint?: number | null,
    options: { ready?: Promise<unknown> } = {},
  ): Promise<StoredManifest> {
    const ready = options.ready ?? Promise.resolve();
    let latest = latestHint === undefined ? await this.newestVerifiedVersion(run) : latestHint;
    for (let attempt = 0; attempt < MAX_VERSION_RACES; attempt++) {
      const version = (latest ?? 0) + 1;
      if (version > MAX_VERSION)
        throw new Error(`publishing to run ${run}: version ${version} is past the 12-digit key space`);
      const manifest: VersionManifest = { schema: MANIFEST_SCHEMA, run, version, parent: latest, ...draft };
      const bytes = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
      const key = manifestKey(run, version);
      const sealed = this.seal(key, bytes);
      const { conditionalWrites } = this.objects;
      // Without conditional writes, the envelope goes up beside the existence check rather than
      // after it (one round trip less): it lives under the sha256 of these bytes, so where the key
      // turns out taken it is an envelope nothing refers to, as `putSealed` leaves after a lost race.
      let taken: boolean;
      if (conditionalWrites) {
        await Promise.all([this.putSignature(sealed), ready]);
        taken = (await this.putSealedObject(sealed, true)) === "exists";
        if (!taken) return { manifest, key, sha256: sha256Hex(bytes) };
      } else {
        const [found] = await Promise.all([this.objects.head(key), this.putSignature(sealed), ready]);
        taken = found !== null;
      }
      if (taken && (await this.readManifest(key))?.ok === true) {
        latest = version;
        continue;
      }
      await this.putSealedObject(sealed, false);
      return { manifest, key, sha256: sha256Hex(bytes) };
    }
    throw new Error(`publishing to run ${run}: lost ${MAX_VERSION_RACES} version races in a row`);
  }

  /**
   * Reads and validates a manifest; `expectedSha256` (from a webhook) must match its bytes. Every
   * refusal is counted and reported with its code (`reportRefusal`); an accepted read takes the key
   * off the refused list.
   */
  async readManifest(
    key: string,
    expectedSha256?: string,
  ): Promise<Result<StoredManifest, ManifestRefusal> | null> {
    const bytes = await this.objects.get(key);
    if (bytes === null) return null;
    const sha256 = sha256Hex(bytes);
    const unsigned =
      expectedSha256 !== undefined && sha256 !== expectedSha256
        ? null
        : await signatureFailure(this.objects, this.options.trusted, bytes, sha256);
    const read = parseManifest(key, bytes, sha256, expectedSha256, unsigned);
    if (read.ok) this.refusals.resolve(key);
    else this.reportRefusal({ record: "manifest", key, code: read.error.code, reason: read.error.reason });
    return read;
  }

  /** Reads a blob into one buffer of the announced size, verified as it lands (`downloadBlob` in blobs.ts). */
  downloadBlob(
    file: AdapterFile,
    options: { into?: Uint8Array; signal?: AbortSignal } = {},
  ): Promise<Result<Uint8Array, IntegrityFailure>> {
    return downloadBlob(this.objects, file, options);
  }

  /**
   * The run's rollback records. Records are immutable, so each is fetched once; reconcile then
   * costs one LIST. A record that is malformed, belongs to another key, or (when signatures are
   * required) is not signed by a trusted key is skipped, counted and reported once: it revokes
   * nothing, and never stops the run's other records from being read.
   */
  async listRollbacks(run: string): Promise<RollbackRecord[]> {
    const keys = await this.objects.list(rollbacksPrefix(run));
    const out: RollbackRecord[] = [];
    for (const key of keys) {
      if (this.refusedRollbacks.has(key)) continue;
      let record = this.rollbackRecords.get(key);
      if (record === undefined) {
        const bytes = await this.objects.get(key);
        if (bytes === null) continue;
        const read = await this.readRecord("rollback", key, bytes, rollbackRecordSchema, (r) =>
          rollbackKey(r.run, r.atVersion, r.to) === key
            ? null
            : `it names ${r.run} ${r.atVersion}→${r.to}, which belongs elsewhere`,
        );
        if (!read.ok) {
          this.refusedRollbacks.set(key, read.error);
          this.reportRefusal(read.error);
          continue;
        }
        record = read.value;
        this.rollbackRecords.set(key, record);
      }
      out.push(record);
    }
    return out;
  }

  /** Verifies and parses a small signed record read from `key` (`parseSignedRecord` in signed-records.ts). */
  private async readRecord<T>(
    record: "rollback" | "head",
    key: string,
    bytes: Uint8Array,
    schema: z.ZodType<T>,
    misplaced: (value: T) => string | null,
  ): Promise<Result<T, RefusedRecord>> {
    const unsigned = await signatureFailure(this.objects, this.options.trusted, bytes, sha256Hex(bytes));
    return parseSignedRecord(record, key, bytes, unsigned, schema, misplaced);
  }

  /** A rollback record's bytes and signature, sealed for `putSealed` (and the trainer's ledger). */
  sealRollback(record: RollbackRecord): SealedRecord {
    return this.seal(
      rollbackKey(record.run, record.atVersion, record.to),
      new TextEncoder().encode(`${JSON.stringify(record, null, 2)}\n`),
    );
  }

  /** Writes a rollback record, signed, where its key is free. */
  async writeRollback(record: RollbackRecord): Promise<{ key: string; sha256: string }> {
    const sealed = this.sealRollback(record);
    await this.putSealed(sealed, true);
    return { key: sealed.key, sha256: sha256Hex(sealed.bytes) };
  }

  /** A head's bytes and signature, sealed for `putSealed` (or `putSignature` then `putSealedObject`). */
  sealHead(head: RunHead): SealedRecord {
    return this.seal(headKey(head.run), new TextEncoder().encode(`${JSON.stringify(head, null, 2)}\n`));
  }

  /** Writes (replaces) the run's signed head. */
  async writeHead(head: RunHead): Promise<void> {
    await this.putSealed(this.sealHead(head), false);
  }

  /**
   * Reads the run's head; null when there is none. A head that is unsigned (when signatures are
   * required), malformed or names another run is refused and counted.
   */
  async readHead(run: string): Promise<Result<RunHead, RefusedRecord> | null> {
    const key = headKey(run);
    const bytes = await this.objects.get(key);
    if (bytes === null) return null;
    const read = await this.readRecord("head", key, bytes, runHeadSchema, (h) =>
      h.run === run ? null : `it names run ${h.run}`,
    );
    if (!read.ok) this.reportRefusal(read.error);
    else this.refusals.resolve(key);
    return read;
  }

  /** The run's current version: the highest one that no rollback revoked. */
  async currentVersion(
    run: string,
  ): Promise<{ current: number | null; versions: number[]; rollbacks: RollbackRecord[] }> {
    const [versions, rollbacks] = await Promise.all([this.listVersions(run), this.listRollbacks(run)]);
    return { current: currentVersion(versions, rollbacks), versions, rollbacks };
  }

  /** Every run with anything under its prefix in the store (one delimiter listing). */
  async listRuns(): Promise<string[]> {
    return this.objects.listSegments(runsPrefix());
  }
}
