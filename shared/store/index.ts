/** The S3-compatible adapter store: object-store interface, S3 and in-memory implementations, layout. */

export { AbandonedUploads } from "./abandoned-uploads.ts";
export {
  AdapterStore,
  type BlobRepair,
  type ManifestDraft,
  type RefusedRecord,
  type SealedRecord,
  type StoredManifest,
  sha256Hex,
} from "./adapter-store.ts";
export {
  blobKey,
  checkpointKey,
  headKey,
  latestCheckpointKey,
  MAX_VERSION,
  manifestKey,
  rollbackKey,
  versionOfKey,
} from "./keys.ts";
export { MemoryObjectStore } from "./memory-object-store.ts";
export { detectConditionalWrites, type ObjectStore, StoreError } from "./object-store.ts";
export { RefusalLog } from "./refusal-log.ts";
export { S3ObjectStore, type S3Settings } from "./s3-object-store.ts";
export { s3EnvSchema, s3SettingsFromEnv } from "./settings.ts";
export { waitForStoreOrExit } from "./startup.ts";
