import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AdapterStore, StoredManifest } from "@loracast/shared/store";
import { sha256Hex } from "@loracast/shared/store";
import * as ort from "onnxruntime-node";
import { FAULT_OF, type PullFailure } from "./failures.ts";
import {
  adapterFiles,
  keptLog,
  managerFor,
  memoryStore,
  publish,
  signedStores,
  spec,
  testClock,
} from "./lifecycle-fixture.ts";
import { pullVersion } from "./puller.ts";
import type { ManagerDeps } from "./types.ts";
import { newVersionRecord, VersionCache } from "./version-cache.ts";

/** Pulls `run@version` once, as a fresh record, and gives the failure (the test expects one). */
async function failure(
  store: AdapterStore,
  version: number,
  over: Partial<ManagerDeps> = {},
  setup: (record: ReturnType<typeof newVersionRecord>) => void = () => {},
  manifestSha256?: string,
): Promise<PullFailure> {
  const d: ManagerDeps = {
    store,
    spec,
    clock: testClock(),
    log: keptLog().log,
    bounds: { maxVersions: 4, maxBytes: 1e6 },
    maxRank: 64,
    runs: null,
    ...over,
  };
  const record = newVersionRecord("r", version, "reconcile", 0);
  setup(record);
  const r = await pullVersion(d, new VersionCache(d.bounds), record, manifestSha256);
  assert.ok(!r.ok, "the pull was expected to fail");
  return r.error;
}

/** `stored` published again as the next version with its file list changed by `files`. */
function republish(
  store: AdapterStore,
  stored: StoredManifest,
  files: (
    f: StoredManifest["manifest"]["adapter"]["files"],
  ) => StoredManifest["manifest"]["adapter"]["files"],
) {
  const { schema: _s, run, version: _v, parent: _p, ...draft } = stored.manifest;
  return store.publishVersion(run, { ...draft, adapter: { files: files(stored.manifest.adapter.files) } });
}

describe("verification failures, each with its typed reason", () => {
  it("absent: no manifest under the version's key", async () => {
    const { store } = memoryStore();
    const f = await failure(store, 1);
    assert.deepEqual(f, {
      kind: "absent",
      reason: "manifest runs/r/versions/000000000001.json is not in the store (yet)",
    });
    assert.equal(FAULT_OF[f.kind], "none");
  });

  it("manifest_refused: the store refuses it on read, with its refusal code", async () => {
    const { objects, store } = memoryStore();
    const v1 = await publish(store, "r", 1);
    await objects.put(v1.key, Buffer.from("{"));
    const junk = await failure(store, 1);
    assert.deepEqual(junk, {
      kind: "manifest_refused",
      code: "malformed",
      reason: `manifest ${v1.key}: not valid JSON`,
    });

    const { trainer, reader, objects: bucket } = signedStores();
    const signed = await publish(trainer, "r", 1);
    await bucket.delete(`signatures/sha256/${signed.sha256}.json`);
    const unsigned = await failure(reader, 1);
    assert.equal(unsigned.kind === "manifest_refused" && unsigned.code, "unsigned");
    assert.equal(FAULT_OF[unsigned.kind], "store", "retried: an operator may restore the signature");
  });

  it("event_mismatch: the webhook announced other bytes; unchanged: the bytes refused before", async () => {
    const { objects, store } = memoryStore();
    const v1 = await publish(store, "r", 1);
    const f = await failure(store, 1, {}, () => {}, "0".repeat(64));
    assert.equal(f.kind, "event_mismatch");
    assert.match(
      f.reason,
      /^event refused: manifest .*: sha256 [0-9a-f]{64} does not match the announced 0{64}$/,
    );

    await objects.put(v1.key, Buffer.from("{"));
    const sha256 = sha256Hex(Buffer.from("{"));
    const refusals = () => store.refusals.counters().reduce((n, c) => n + c.count, 0);
    const before = refusals();
    const same = await failure(store, 1, {}, (r) => {
      r.refusal = { sha256, reason: "refused before" };
    });
    assert.deepEqual(same, { kind: "unchanged", reason: "refused before" });
    assert.equal(refusals(), before, "not judged (nor counted) again");
  });

  it("manifest_incomplete and blob_too_large: refused for good, and counted as refused manifests", async () => {
    const { store } = memoryStore();
    const v1 = await publish(store, "r", 1);
    await republish(store, v1, (files) => files.filter((f) => f.name !== "adapter_config.json"));
    const incomplete = await failure(store, 2);
    assert.deepEqual(incomplete, {
      kind: "manifest_incomplete",
      reason: "manifest lists no adapter_config.json",
    });

    const big = await failure(store, 1, { bounds: { maxVersions: 4, maxBytes: 100 } });
    assert.equal(big.kind, "blob_too_large");
    assert.match(
      big.reason,
      /^blob adapter_model\.safetensors \(blobs\/sha256\/[0-9a-f]{64}\) announces \d+ bytes, more than the adapter cache holds \(100 bytes, CACHE_MAX_MB\)$/,
    );
    assert.equal(FAULT_OF[incomplete.kind], "version");
    assert.equal(FAULT_OF[big.kind], "version");
    assert.deepEqual(
      store.refusals.counters().map((c) => [c.code, c.count]),
      [
        ["malformed", 1],
        ["too_large", 1],
      ],
    );
  });

  it("base_mismatch: a manifest for another base, unless this generator also accepts that fingerprint", async () => {
    const { store } = memoryStore();
    await publish(store, "r", 1, null, "spec-sha256:other");
    const f = await failure(store, 1);
    assert.deepEqual(f, {
      kind: "base_mismatch",
      fingerprint: "spec-sha256:other",
      reason: `base fingerprint spec-sha256:other does not match this generator's base ${spec.fingerprint}`,
    });
    assert.equal(FAULT_OF[f.kind], "version");
    const { m } = managerFor(store, { alsoAccept: ["spec-sha256:other"] });
    assert.ok((await m.ensure("r", 1)).ok);
  });

  it("blob_unavailable: a blob missing, or not the bytes the manifest names", async () => {
    const { objects, store } = memoryStore();
    const v1 = await publish(store, "r", 1);
    const weights = v1.manifest.adapter.files.find((f) => f.name === "adapter_model.safetensors");
    assert.ok(weights !== undefined);
    const bytes = await objects.get(weights.blob);
    assert.ok(bytes !== null);
    bytes[bytes.length - 1] = (bytes.at(-1) as number) ^ 1;
    await objects.put(weights.blob, bytes);
    const corrupt = await failure(store, 1);
    assert.equal(corrupt.kind, "blob_unavailable");
    assert.match(
      corrupt.reason,
      /^blob adapter_model\.safetensors .*: sha256 [0-9a-f]{64} does not match the manifest's/,
    );
    await objects.delete(weights.blob);
    const missing = await failure(store, 1);
    assert.match(missing.reason, /^blob adapter_model\.safetensors \(.*\) is missing from the store$/);
    assert.equal(FAULT_OF[missing.kind], "store");
  });

  it("invalid_adapter: weights that do not fit the base's module map", async () => {
    const { store } = memoryStore();
    await store.publishAdapter("r", {
      ...adapterFiles(1, 3),
      draft: {
        createdAt: "2026-01-01T00:00:00.000Z",
        base: { fingerprint: null },
        probe: null,
        training: null,
        publisher: { service: "test", instance: "t" },
      },
    });
    const f = await failure(store, 1);
    assert.equal(f.kind, "invalid_adapter");
    assert.match(f.reason, /^adapter_model\.safetensors: .*lora_A/);
    assert.equal(FAULT_OF[f.kind], "version");
  });

  it("probe_mismatch: scored before activating, and a version whose probe disagrees never activates", async () => {
    const { store } = memoryStore();
    // A stand-in engine: every next-token log-probability is −seed/10 for an adapter filled with seed.
    const scored: number[][] = [];
    const engine: Partial<ManagerDeps> = {
      prepare: (v) => ({
        seed: new ort.Tensor("float32", Float32Array.of(v.modules[0]?.a.array()[0] as number), [1]),
      }),
      probe: {
        score: async (feeds, tokens) => {
          scored.push([...tokens]);
          const seed = ((feeds.seed as ort.Tensor).data as Float32Array)[0] ?? 0;
          return tokens.slice(1).map(() => -seed / 10);
        },
        tolerance: 0.01,
      },
    };
    const { m } = managerFor(store, engine);
    await publish(store, "p", 1, { tokens: [[5, 6, 7]], logprobs: [[-0.1, -0.1]] });
    await m.reconcile();
    assert.equal(m.activeRecord("p")?.version, 1);
    assert.deepEqual(scored, [[5, 6, 7]]);

    await publish(store, "p", 2, { tokens: [[5, 6, 7]], logprobs: [[-0.2, -0.25]] });
    await m.reconcile();
    assert.equal(m.activeRecord("p")?.version, 1, "the previous version keeps serving");
    const failed = m.cache.get("p", 2);
    assert.deepEqual([failed?.state, failed?.retry], ["failed", null]);
    assert.match(
      failed?.reason ?? "",
      /^probe logprobs differ from the trainer's by 0\.0500 \(tolerance 0\.01\)$/,
    );

    await publish(store, "p", 3, { tokens: [[5, 6, 7]], logprobs: [[-0.3]] });
    await m.reconcile();
    assert.equal(m.cache.get("p", 3)?.reason, "probe row 0: 1 logprobs for 3 tokens");
  });

  it("fails a manifest that announces 2^40 bytes at once, naming the blob, and never pulls it again", async () => {
    const { store } = memoryStore();
    const { m, clock } = managerFor(store);
    const v1 = await publish(store, "r", 1);
    await republish(store, v1, ([config, weights]) => {
      assert.ok(config !== undefined && weights !== undefined);
      return [config, { ...weights, bytes: 2 ** 40 }];
    });
    await m.reconcile();
    const failed = m.cache.get("r", 2);
    assert.equal(failed?.state, "failed");
    assert.match(
      failed?.reason ?? "",
      /^blob adapter_model\.safetensors \(blobs\/sha256\/[0-9a-f]{64}\) announces 1099511627776 bytes, more than the adapter cache holds/,
    );
    assert.equal(failed?.retry, null);
    assert.equal(m.activeRecord("r")?.version, 1);
    clock.t += 3_600_000;
    await m.reconcile();
    assert.equal(m.stats.failures, 1, "not pulled again");
  });
});
