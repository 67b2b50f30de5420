/** The S3-compatible adapter store: object-store interface, S3 and in-memory implementations, layout. */

export { AbandonedUploads } from "./abandoned-uploads.ts";
export { AdapterStore } from "./adapter-store.ts";
export type {
  BlobRepair,
  ManifestDraft,
  SealedRecord,
  StoredManifest,
} from "./adapter-store-types.ts";
export { sha256Hex } from "./blobs.ts";
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
export { RefusalLog, type RefusedRecord } from "./refusal-log.ts";
export { S3ObjectStore, type S3Settings } from "./s3-object-store.ts";
export { s3EnvSchema, s3SettingsFromEnv } from "./settings.ts";
export { sha256Concurrent, sharedBytes } from "./sha256-thread.ts";
export { waitForStoreOrExit } from "./startup.ts";
