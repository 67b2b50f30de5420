/**
 * Judging a version by what it holds: the manifest's file list and sizes, its base, the PEFT files
 * against the base's module map, and the manifest's probe scored with the staged feeds. Every check
 * here fails the immutable version for good (`FAULT_OF` in failures.ts); reading what the store holds
 * is the puller's (`puller.ts`).
 */
import { type AdapterFile, CONFIG_FILE, type VersionManifest, WEIGHTS_FILE } from "@loracast/shared/manifest";
import { verifyAdapterFiles } from "@loracast/shared/model-spec";
import { err, ok, type Result } from "@loracast/shared/result";
import type { PullFailure } from "./failures.ts";
import type { LoadedAdapter, ManagerDeps } from "./types.ts";

/** A failure of the manifest itself, and the store refusal code it is counted under (`reportRefusal`). */
export interface ManifestFilesFailure {
  failure: Extract<PullFailure, { kind: "manifest_incomplete" | "blob_too_large" }>;
  code: "malformed" | "too_large";
}

/**
 * The manifest's two PEFT files: `manifest_incomplete` (refusal code `malformed`) when one is not
 * listed, `blob_too_large` (`too_large`) when one announces more than `maxBytes` (the cache bound,
 * `CACHE_MAX_MB` in bytes): a size no bound admits fails before anything is allocated.
 */
export function manifestFiles(
  manifest: VersionManifest,
  maxBytes: number,
): Result<{ weights: AdapterFile; config: AdapterFile }, ManifestFilesFailure> {
  const weights = manifest.adapter.files.find((f) => f.name === WEIGHTS_FILE);
  const config = manifest.adapter.files.find((f) => f.name === CONFIG_FILE);
  if (weights === undefined || config === undefined) {
    const missing = weights === undefined ? WEIGHTS_FILE : CONFIG_FILE;
    return err({
      failure: { kind: "manifest_incomplete", reason: `manifest lists no ${missing}` },
      code: "malformed",
    });
  }
  for (const f of [weights, config]) {
    if (f.bytes > maxBytes) {
      const reason = `blob ${f.name} (${f.blob}) announces ${f.bytes} bytes, more than the adapter cache holds (${maxBytes} bytes, CACHE_MAX_MB)`;
      return err({ failure: { kind: "blob_too_large", bytes: f.bytes, reason }, code: "too_large" });
    }
  }
  return ok({ weights, config });
}

/**
 * `base_mismatch` when the manifest names a base fingerprint other than this generator's
 * (`spec.fingerprint`) or one it also accepts; null when it matches or names none.
 */
export function checkBase(
  d: Pick<ManagerDeps, "spec" | "alsoAccept">,
  manifest: VersionManifest,
): PullFailure | null {
  const fingerprint = manifest.base.fingerprint;
  if (fingerprint === null || fingerprint === d.spec.fingerprint || d.alsoAccept?.includes(fingerprint))
    return null;
  return {
    kind: "base_mismatch",
    fingerprint,
    reason: `base fingerprint ${fingerprint} does not match this generator's base ${d.spec.fingerprint}`,
  };
}

/**
 * Verifies the downloaded PEFT files against the base (`verifyAdapterFiles`: the config's PEFT
 * semantics, every tensor's key, dtype and shape, rank at most `maxRank`), builds the engine feeds
 * (`prepare`), and scores each row of the manifest's probe with them (`probe.score`: next-token
 * log-probabilities, compared elementwise with the trainer's; the largest absolute difference must be
 * at most `probe.tolerance`). `invalid_adapter` or `probe_mismatch` otherwise.
 */
export async function verifyPulled(
  d: Pick<ManagerDeps, "spec" | "maxRank" | "prepare" | "probe">,
  manifest: VersionManifest,
  weights: Uint8Array,
  configBytes: Uint8Array,
): Promise<Result<LoadedAdapter, PullFailure>> {
  const checked = verifyAdapterFiles(d.spec, new TextDecoder().decode(configBytes), weights, {
    maxRank: d.maxRank,
  });
  if (!checked.ok) return err({ kind: "invalid_adapter", reason: checked.error });
  const feeds = d.prepare?.(checked.value.verified) ?? null;
  if (feeds !== null && manifest.probe !== null && d.probe !== undefined) {
    const { score, tolerance } = d.probe;
    for (const [row, tokens] of manifest.probe.tokens.entries()) {
      const want = manifest.probe.logprobs[row] ?? [];
      const got = await score(feeds, tokens);
      if (got.length !== want.length) {
        const reason = `probe row ${row}: ${want.length} logprobs for ${tokens.length} tokens`;
        return err({ kind: "probe_mismatch", reason });
      }
      const diff = got.reduce((m, g, i) => Math.max(m, Math.abs(g - (want[i] ?? Number.NaN))), 0);
      if (!(diff <= tolerance)) {
        const reason = `probe logprobs differ from the trainer's by ${diff.toPrecision(3)} (tolerance ${tolerance})`;
        return err({ kind: "probe_mismatch", reason });
      }
    }
  }
  return ok({ weights, feeds });
}
