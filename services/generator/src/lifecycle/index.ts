/** The adapter lifecycle of a generator: pull, verify, stage, activate; reconcile; the version cache. */
export { AdapterManager } from "./adapter-manager.ts";
export type {
  EnsureError,
  VersionRecord,
} from "./types.ts";
