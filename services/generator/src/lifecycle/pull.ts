/** One pull of a version: manifest, blobs into a (possibly reused) buffer, verification, feeds, probe. */
import { CONFIG_FILE, WEIGHTS_FILE } from "@loracast/shared/manifest";
import { verifyAdapterFiles } from "@loracast/shared/model-spec";
import { err, ok, type Result } from "@loracast/shared/result";
import { StoreError, sha256Hex } from "@loracast/shared/store";
import type { LoadedAdapter, ManagerDeps, PullFailure, VersionRecord } from "./types.ts";
import type { VersionCache } from "./version-cache.ts";

/**
 * Reads `record`'s manifest (checked against `manifestSha256` when a webhook announced one), downloads
 * and verifies its files, and scores the manifest's probe. An `err` says whose fault it is (see
 * `PullFailure`); a thrown `StoreError` is the store's availability (transient). Sets
 * `record.pulling`, `sha256`, `bytes`, `manifestSha256`, `manifestRefused` and `phases` as it goes.
 */
export async function fetchAndVerify(
  d: ManagerDeps,
  cache: VersionCache,
  record: VersionRecord,
  manifestSha256?: string,
): Promise<Result<LoadedAdapter, PullFailure>> {
  const version = (reason: string) => err({ kind: "version" as const, reason });
  const stored = (reason: string) => err({ kind: "store" as const, reason });
  record.pulling = "downloading";
  const t0 = d.clock.now();
  const key = record.manifestKey;
  const absent = () => err({ kind: "absent" as const, reason: `manifest ${key} is not in the store (yet)` });
  // Read raw first: bytes refused before are not judged (nor logged, nor counted) again.
  const raw = await d.store.objects.get(key);
  if (raw === null) return absent();
  const rawSha256 = sha256Hex(raw);
  const announced = manifestSha256 ?? rawSha256;
  if (announced === rawSha256 && record.refusal?.sha256 === rawSha256)
    return err({ kind: "unchanged", reason: record.refusal.reason });
  // Verified as the bytes just read: a manifest replaced between the two reads is refused as
  // `event_mismatch`, and is then a store read that broke off, not a bad event (retried next pass).
  const read = await d.store.readManifest(key, announced);
  const tManifest = d.clock.now();
  if (read === null) return absent();
  if (!read.ok && read.error.code === "event_mismatch" && manifestSha256 === undefined)
    throw new StoreError("unavailable", `manifest ${key} changed while it was read`);
  // Every refusal of the manifest costs a small read or two and no download.
  record.manifestRefused = !read.ok;
  record.refusal =
    read.ok || read.error.code === "event_mismatch" ? null : { sha256: rawSha256, reason: read.error.reason };
  // A webhook that announces other bytes than the store holds is a bad event, not a bad version:
  // the version keeps its state and is judged on what the store holds (reconcile pulls it).
  if (!read.ok && read.error.code === "event_mismatch")
    return err({ kind: "event", reason: read.error.reason });
  if (!read.ok) return stored(read.error.reason);
  const { manifest } = read.value;
  record.manifestSha256 = read.value.sha256;
  // The store counts these refusals with its own, under one metric.
  const refuse = (code: "malformed" | "too_large", reason: string) => {
    record.manifestRefused = true;
    d.store.reportRefusal({ record: "manifest", key, code, reason: `manifest ${key}: ${reason}` });
    return version(reason);
  };
  const weightsEntry = manifest.adapter.files.find((f) => f.name === WEIGHTS_FILE);
  const configEntry = manifest.adapter.files.find((f) => f.name === CONFIG_FILE);
  if (weightsEntry === undefined || configEntry === undefined)
    return refuse(
      "malformed",
      `manifest lists no ${weightsEntry === undefined ? WEIGHTS_FILE : CONFIG_FILE}`,
    );
  // A size no cache bound admits fails now, naming the blob, before anything is allocated.
  for (const f of [weightsEntry, configEntry]) {
    if (f.bytes > d.bounds.maxBytes) {
      return refuse(
        "too_large",
        `blob ${f.name} (${f.blob}) announces ${f.bytes} bytes, more than the adapter cache holds (${d.bounds.maxBytes} bytes, CACHE_MAX_MB)`,
      );
    }
  }
  record.sha256 = weightsEntry.sha256;
  record.bytes = weightsEntry.bytes;
  const fingerprint = manifest.base.fingerprint;
  if (fingerprint !== null && fingerprint !== d.spec.fingerprint && !d.alsoAccept?.includes(fingerprint)) {
    return version(
      `base fingerprint ${fingerprint} does not match this generator's base ${d.spec.fingerprint}`,
    );
  }
  // Make room first, so the bound holds while the new weights download, not only after. Versions
  // of a run are usually all the same size: an evicted buffer of that size receives the download,
  // so there is no fresh memory to page in and no garbage for the collector.
  const into = cache.evict(weightsEntry.bytes).find((e) => e.weights.byteLength === weightsEntry.bytes);
  const [weights, configBytes] = await Promise.all([
    d.store.downloadBlob(weightsEntry, into === undefined ? {} : { into: into.weights }),
    d.store.downloadBlob(configEntry),
  ]);
  // A missing or corrupt blob may be restored or rewritten (a later publish heals a corrupt one).
  if (!weights.ok) return stored(weights.error.reason);
  if (!configBytes.ok) return stored(configBytes.error.reason);

  record.pulling = "verifying";
  const tDownload = d.clock.now();
  const checked = verifyAdapterFiles(d.spec, new TextDecoder().decode(configBytes.value), weights.value, {
    maxRank: d.maxRank,
  });
  if (!checked.ok) return version(checked.error);
  const { verified, config } = checked.value;
  const feeds = d.prepare?.(verified) ?? null;
  if (feeds !== null && manifest.probe !== null && d.probe !== undefined) {
    const { score, tolerance } = d.probe;
    for (const [row, tokens] of manifest.probe.tokens.entries()) {
      const want = manifest.probe.logprobs[row] ?? [];
      const got = await score(feeds, tokens);
      if (got.length !== want.length) {
        return version(`probe row ${row}: ${want.length} logprobs for ${tokens.length} tokens`);
      }
      const diff = got.reduce((m, g, i) => Math.max(m, Math.abs(g - (want[i] ?? Number.NaN))), 0);
      if (!(diff <= tolerance)) {
        return version(
          `probe logprobs differ from the trainer's by ${diff.toPrecision(3)} (tolerance ${tolerance})`,
        );
      }
    }
  }
  record.phases = {
    manifestMs: tManifest - t0,
    downloadMs: tDownload - tManifest,
    verifyMs: d.clock.now() - tDownload,
  };
  return ok({ weights: weights.value, verified, config: config.raw as Record<string, unknown>, feeds });
}
