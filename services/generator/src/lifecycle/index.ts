/** The adapter lifecycle of a generator: pull, verify, stage, activate; reconcile; the version cache. */
export { AdapterManager, type ManagerDeps } from "./adapter-manager.ts";
export type { AdapterState, LoadedAdapter, Trigger, VersionRecord } from "./types.ts";
export { type CacheBounds, VersionCache } from "./version-cache.ts";
