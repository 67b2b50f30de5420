/** Store layout (docs/architecture.md): every key the system writes, relative to the configured prefix. */

const pad = (n: number): string => n.toString().padStart(12, "0");

/** The highest version (and checkpoint step) a 12-digit key holds. */
export const MAX_VERSION = 999_999_999_999;

/** A content-addressed blob: `blobs/sha256/<hex>` (adapter weights and configs, immutable). */
export const blobKey = (sha256: string): string => `blobs/sha256/${sha256}`;
/** Where every run's keys live: `runs/`. */
export const runsPrefix = (): string => "runs/";
/** Where a run's version manifests live: `runs/<run>/versions/`. */
export const versionsPrefix = (run: string): string => `runs/${run}/versions/`;
/** A version's manifest: `runs/<run>/versions/<12-digit version>.json` (immutable, signed). */
export const manifestKey = (run: string, version: number): string =>
  `${versionsPrefix(run)}${pad(version)}.json`;
/** Where a run's rollback records live: `runs/<run>/rollbacks/`. */
export const rollbacksPrefix = (run: string): string => `runs/${run}/rollbacks/`;
/**
 * A rollback record written at version `atVersion` back to `to`:
 * `runs/<run>/rollbacks/<12 digits>-<12 digits>.json` (immutable, signed).
 */
export const rollbackKey = (run: string, atVersion: number, to: number): string =>
  `${rollbacksPrefix(run)}${pad(atVersion)}-${pad(to)}.json`;

/** The run's signed head (mutable: rewritten on every publish, rollback and refresh). */
export const headKey = (run: string): string => `runs/${run}/head.json`;

/**
 * A training checkpoint taken once the run has completed `step` steps (the run's step count, not
 * the optimizer's step, which the checkpoint records in its state):
 * `runs/<run>/checkpoints/<12 digits>.safetensors`.
 */
export const checkpointKey = (run: string, step: number): string =>
  `runs/${run}/checkpoints/${pad(step)}.safetensors`;
/** Written after the checkpoint it names, so a reader never follows it to a partial one. */
export const latestCheckpointKey = (run: string): string => `runs/${run}/checkpoints/latest.json`;

const MANIFEST = /\/versions\/(\d{12})\.json$/;

/** The version number a manifest key names, or null for any other key. */
export function versionOfKey(key: string): number | null {
  const m = MANIFEST.exec(key);
  return m?.[1] === undefined ? null : Number(m[1]);
}
