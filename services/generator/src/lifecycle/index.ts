/** The adapter lifecycle of a generator: pull, verify, stage, activate; reconcile; the version cache. */
export { AdapterManager, type ManagerDeps } from "./adapter-manager.ts";
export type { EnsureError, LoadedAdapter, Trigger, VersionRecord, VersionState } from "./types.ts";
export { type CacheBounds, VersionCache } from "./version-cache.ts";
