import { err, ok, type Result } from "@loracast/shared/result";
import type { ApiError } from "../errors.ts";
import type { AdapterManager, VersionRecord } from "../lifecycle/index.ts";

const VERSIONED = /^(.+)@(\d+)$/;

/** `<run>@<version>` → its parts, or null for any other name. */
export function parseVersionRef(ref: string): { run: string; version: number } | null {
  const m = VERSIONED.exec(ref);
  return m === null ? null : { run: m[1] as string, version: Number(m[2]) };
}

/**
 * Pulls and verifies an exact version if it is not held yet. A version that failed verification is
 * `adapter_failed`; one the store does not have (yet) is `model_not_found`.
 */
export async function ensureVersion(
  manager: AdapterManager,
  ref: { run: string; version: number },
  param: string,
): Promise<Result<VersionRecord, ApiError>> {
  const r = await manager.ensure(ref.run, ref.version);
  if (r.ok) return ok(r.value);
  const failed = manager.cache.get(ref.run, ref.version)?.state === "failed";
  return err({
    code: failed ? "adapter_failed" : "model_not_found",
    message: `${ref.run}@${ref.version}: ${r.error}`,
    param,
  });
}
