/**
 * `<run>@<version>`: how APIs, logs and caches name one version of a run (OpenAI `model`, vLLM
 * `lora_path`, `/v1/models` ids and roots). The formatter and the parser live together so that the
 * two spellings cannot drift apart.
 */
import { RUN_NAME } from "./run-name.ts";

const VERSIONED = /^(.+)@(\d+)$/;

/** A run name and a version number (1 or more). */
export interface VersionRef {
  run: string;
  version: number;
}

/** `("demo", 3)` → `"demo@3"`; the inverse of `parseVersionRef` for valid parts. */
export function formatVersionRef(run: string, version: number): string {
  return `${run}@${version}`;
}

/**
 * `<run>@<version>` → its parts, or null for any other name, including one whose run is not a run
 * name (`RUN_NAME`) or whose version is not a safe integer of 1 or more: those never reach a store key.
 */
export function parseVersionRef(ref: string): VersionRef | null {
  const m = VERSIONED.exec(ref);
  if (m === null || !RUN_NAME.test(m[1] as string)) return null;
  const version = Number(m[2]);
  return Number.isSafeInteger(version) && version >= 1 ? { run: m[1] as string, version } : null;
}
