/** The adapter lifecycle of a generator: pull, verify, stage, activate; reconcile; the version cache. */
export { AdapterManager } from "./adapter-manager.ts";
export type {
  EnsureError,
  LoadedAdapter,
  ManagerDeps,
  Trigger,
  VersionRecord,
  VersionState,
} from "./types.ts";
export { type CacheBounds, VersionCache, weightBytes } from "./version-cache.ts";
