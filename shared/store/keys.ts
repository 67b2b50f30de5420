/** Store layout (docs/architecture.md): every key the system writes, relative to the configured prefix. */

const pad = (n: number): string => n.toString().padStart(12, "0");

/** The highest version (and checkpoint step) a 12-digit key holds. */
export const MAX_VERSION = 999_999_999_999;

export const blobKey = (sha256: string): string => `blobs/sha256/${sha256}`;
export const runsPrefix = (): string => "runs/";
export const versionsPrefix = (run: string): string => `runs/${run}/versions/`;
export const manifestKey = (run: string, version: number): string =>
  `${versionsPrefix(run)}${pad(version)}.json`;
export const rollbacksPrefix = (run: string): string => `runs/${run}/rollbacks/`;
export const rollbackKey = (run: string, atVersion: number, to: number): string =>
  `${rollbacksPrefix(run)}${pad(atVersion)}-${pad(to)}.json`;

/** The run's signed head (mutable: rewritten on every publish, rollback and refresh). */
export const headKey = (run: string): string => `runs/${run}/head.json`;

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
