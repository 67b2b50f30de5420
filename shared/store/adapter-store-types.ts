/**
 * The shapes the adapter store reads and writes: stored manifests, uploads, sealed (signed) records,
 * integrity failures and blob repairs, and the store's signing options.
 */
import type { VersionManifest } from "../manifest/index.ts";
import type { Signer, TrustedKeys } from "../signing/index.ts";
import type { RefusedRecord } from "./refusal-log.ts";

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
  /** adapter_config.json, as published. */
  configBytes: Uint8Array;
  /** adapter_model.safetensors, as published. */
  weights: Uint8Array;
  draft: Omit<ManifestDraft, "adapter">;
}

/** Why reading something back from the store did not give a usable, verified object. */
export interface IntegrityFailure {
  reason: string;
  /** Why a manifest was refused (counted in `refusals`); absent for a blob that is missing or corrupt. */
  code?: RefusedRecord["code"];
}

/** A manifest refused on read: always with the refusal code it was counted under. */
export type ManifestRefusal = Required<IntegrityFailure>;

/**
 * A small record exactly as written to the store: its key and bytes, and its detached signature
 * envelope's key and bytes (null when unsigned).
 */
export interface SealedRecord {
  key: string;
  bytes: Uint8Array;
  signature: { key: string; bytes: Uint8Array } | null;
}

/** Who signs what this store writes, and whose signatures its reads require. */
export interface SigningOptions {
  /** Signs every manifest and rollback record written; without it they are written unsigned. */
  signer?: Signer;
  /**
   * Keys a manifest or rollback record read back must be signed by; null or absent reads
   * unsigned metadata as it is (a generator started with `GENERATOR_ALLOW_UNSIGNED=true` and no
   * `MANIFEST_PUBLIC_KEYS`: no protection).
   */
  trusted?: TrustedKeys | null;
  /** Called for each refused record (a rollback record once per key), to log it. */
  onRefused?: (refused: RefusedRecord) => void;
}

/**
 * A blob a publish found corrupt at its content address and rewrote. `foundSha256` is the sha256
 * of what the store held, null when its size already differed (it is not read then).
 */
export interface BlobRepair {
  key: string;
  expectedSha256: string;
  foundSha256: string | null;
  /** Sizes in bytes: what the blob must be, and what the store held. */
  expectedBytes: number;
  foundBytes: number;
}

/** A store's signing options, and who hears of blobs it repairs (to log them). */
export interface AdapterStoreOptions extends SigningOptions {
  /** Called after each corrupt blob a publish rewrote (see `putBlob`). */
  onBlobRepaired?: (repair: BlobRepair) => void;
}
