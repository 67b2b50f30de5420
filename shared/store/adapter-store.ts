import { createHash } from "node:crypto";
import {
  type AdapterFile,
  CONFIG_FILE,
  currentVersion,
  MANIFEST_SCHEMA,
  type RollbackRecord,
  rollbackRecordSchema,
  type VersionManifest,
  versionManifestSchema,
  WEIGHTS_FILE,
} from "../manifest/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import {
  blobKey,
  manifestKey,
  rollbackKey,
  rollbacksPrefix,
  runsPrefix,
  versionOfKey,
  versionsPrefix,
} from "./keys.ts";
import type { ObjectStore } from "./object-store.ts";

export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** A manifest as stored: its parsed content, its key and the sha256 of its exact bytes. */
export interface StoredManifest {
  manifest: VersionManifest;
  key: string;
  sha256: string;
}

/** The manifest fields a publisher chooses; the store assigns version, parent and schema. */
export type ManifestDraft = Omit<VersionManifest, "schema" | "run" | "version" | "parent">;

/** A PEFT adapter's two files, and the manifest fields other than its file list. */
export interface AdapterUpload {
  configBytes: Uint8Array;
  weights: Uint8Array;
  draft: Omit<ManifestDraft, "adapter"> & { adapterConfig: VersionManifest["adapter"]["config"] };
}

/** Why reading something back from the store did not give a usable, verified object. */
export interface IntegrityFailure {
  reason: string;
}

const MAX_VERSION_RACES = 8;

/**
 * The content-addressed adapter store: blobs by sha256, immutable per-version manifests and
 * rollback records. The latest version is found by listing, never through a mutable pointer.
 */
export class AdapterStore {
  private readonly rollbackRecords = new Map<string, RollbackRecord>();

  constructor(readonly objects: ObjectStore) {}

  /** Uploads a blob unless an object with its address and size already exists. */
  async putBlob(
    bytes: Uint8Array,
    contentType?: string,
  ): Promise<{ file: Omit<AdapterFile, "name">; uploaded: boolean }> {
    const sha256 = sha256Hex(bytes);
    const key = blobKey(sha256);
    const file = { blob: key, sha256, bytes: bytes.byteLength };
    const existing = await this.objects.head(key);
    if (existing !== null && existing.bytes === bytes.byteLength) return { file, uploaded: false };
    await this.objects.put(key, bytes, contentType === undefined ? {} : { contentType });
    return { file, uploaded: true };
  }

  /**
   * Publishes an adapter as the run's next version: uploads its two blobs (those already in the
   * store are not sent again), then writes the manifest that names them.
   */
  async publishAdapter(run: string, upload: AdapterUpload): Promise<StoredManifest> {
    const [config, weights] = await Promise.all([
      this.putBlob(upload.configBytes, "application/json"),
      this.putBlob(upload.weights),
    ]);
    const { adapterConfig, ...draft } = upload.draft;
    return this.publishVersion(run, {
      ...draft,
      adapter: {
        config: adapterConfig,
        files: [
          { name: CONFIG_FILE, ...config.file },
          { name: WEIGHTS_FILE, ...weights.file },
        ],
      },
    });
  }

  /** Every version number of a run, ascending; only those after `after` when given. */
  async listVersions(run: string, after?: number): Promise<number[]> {
    const keys = await this.objects.list(
      versionsPrefix(run),
      after === undefined ? undefined : manifestKey(run, after),
    );
    return keys.map(versionOfKey).filter((v): v is number => v !== null);
  }

  async latestVersion(run: string): Promise<number | null> {
    const all = await this.listVersions(run);
    return all.length === 0 ? null : (all[all.length - 1] as number);
  }

  /**
   * Writes the run's next manifest. With conditional writes the server settles races between
   * publishers; without them (s3rver), callers must serialise publishes to a run themselves.
   */
  async publishVersion(
    run: string,
    draft: ManifestDraft,
    latestHint?: number | null,
  ): Promise<StoredManifest> {
    let latest = latestHint === undefined ? await this.latestVersion(run) : latestHint;
    for (let attempt = 0; attempt < MAX_VERSION_RACES; attempt++) {
      const version = (latest ?? 0) + 1;
      const manifest: VersionManifest = { schema: MANIFEST_SCHEMA, run, version, parent: latest, ...draft };
      const bytes = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
      const key = manifestKey(run, version);
      if (!this.objects.conditionalWrites && (await this.objects.head(key)) !== null) {
        latest = await this.latestVersion(run);
        continue;
      }
      const outcome = await this.objects.put(key, bytes, {
        ifNoneMatch: true,
        contentType: "application/json",
      });
      if (outcome === "written") return { manifest, key, sha256: sha256Hex(bytes) };
      latest = await this.latestVersion(run);
    }
    throw new Error(`publishing to run ${run}: lost ${MAX_VERSION_RACES} version races in a row`);
  }

  /** Reads and validates a manifest; `expectedSha256` (from a webhook) must match its bytes. */
  async readManifest(
    key: string,
    expectedSha256?: string,
  ): Promise<Result<StoredManifest, IntegrityFailure> | null> {
    const bytes = await this.objects.get(key);
    if (bytes === null) return null;
    const sha256 = sha256Hex(bytes);
    if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
      return err({
        reason: `manifest ${key}: sha256 ${sha256} does not match the announced ${expectedSha256}`,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return err({ reason: `manifest ${key}: not valid JSON` });
    }
    const parsed = versionManifestSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return err({ reason: `manifest ${key}: ${issue?.path.join(".")}: ${issue?.message}` });
    }
    if (manifestKey(parsed.data.run, parsed.data.version) !== key) {
      return err({
        reason: `manifest ${key}: names ${parsed.data.run}@${parsed.data.version}, which belongs elsewhere`,
      });
    }
    return ok({ manifest: parsed.data, key, sha256 });
  }

  /**
   * Reads a blob into one buffer of the announced size, hashing each region as it lands, so
   * verification costs no second pass and a wrong-sized blob is refused before its bytes are read.
   * `into`, when it has that size, is the buffer (its previous content is overwritten).
   */
  async downloadBlob(
    file: AdapterFile,
    options: { into?: Uint8Array; signal?: AbortSignal } = {},
  ): Promise<Result<Uint8Array, IntegrityFailure>> {
    const { into, signal } = options;
    const out = into?.byteLength === file.bytes ? into : Buffer.allocUnsafeSlow(file.bytes);
    const hash = createHash("sha256");
    const size = await this.objects.readInto(file.blob, out, (region) => hash.update(region), signal);
    if (size === null) return err({ reason: `blob ${file.name} (${file.blob}) is missing from the store` });
    if (size > file.bytes) {
      return err({
        reason: `blob ${file.name} (${file.blob}) is larger than the ${file.bytes} bytes announced (${size})`,
      });
    }
    if (size !== file.bytes) {
      return err({ reason: `blob ${file.name} (${file.blob}) has ${size} bytes, ${file.bytes} announced` });
    }
    const actual = hash.digest("hex");
    if (actual !== file.sha256) {
      return err({
        reason: `blob ${file.name} (${file.blob}): sha256 ${actual} does not match the manifest's ${file.sha256}`,
      });
    }
    return ok(out);
  }

  /** Rollback records are immutable, so each is fetched once; reconcile then costs one LIST. */
  async listRollbacks(run: string): Promise<RollbackRecord[]> {
    const keys = await this.objects.list(rollbacksPrefix(run));
    const out: RollbackRecord[] = [];
    for (const key of keys) {
      let record = this.rollbackRecords.get(key);
      if (record === undefined) {
        const bytes = await this.objects.get(key);
        if (bytes === null) continue;
        const parsed = rollbackRecordSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
        if (!parsed.success) continue;
        record = parsed.data;
        this.rollbackRecords.set(key, record);
      }
      out.push(record);
    }
    return out;
  }

  async writeRollback(record: RollbackRecord): Promise<{ key: string; sha256: string }> {
    const bytes = new TextEncoder().encode(`${JSON.stringify(record, null, 2)}\n`);
    const key = rollbackKey(record.run, record.atVersion, record.to);
    await this.objects.put(key, bytes, { ifNoneMatch: true, contentType: "application/json" });
    return { key, sha256: sha256Hex(bytes) };
  }

  /** The run's current version: the highest one that no rollback revoked. */
  async currentVersion(
    run: string,
  ): Promise<{ current: number | null; versions: number[]; rollbacks: RollbackRecord[] }> {
    const [versions, rollbacks] = await Promise.all([this.listVersions(run), this.listRollbacks(run)]);
    return { current: currentVersion(versions, rollbacks), versions, rollbacks };
  }

  async listRuns(): Promise<string[]> {
    return this.objects.listSegments(runsPrefix());
  }
}
