import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { DEMO_BASE_CONFIG } from "@loracast/dev-support/fixtures";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { createLogger } from "@loracast/shared/platform";
import { encodeSafetensors } from "@loracast/shared/safetensors";
import { AdapterStore, MemoryObjectStore } from "@loracast/shared/store";
import * as ort from "onnxruntime-node";
import { AdapterManager } from "./adapter-manager.ts";

describe("adapter manager", () => {
  const configJson = readFileSync(DEMO_BASE_CONFIG, "utf8");
  const dims = parseDecoderDims(JSON.parse(configJson));
  if (!dims.ok) throw dims.error;
  const spec = buildModelSpec(dims.value);

  async function publish(
    store: AdapterStore,
    run: string,
    seed: number,
    probe: { tokens: number[][]; logprobs: number[][] } | null = null,
  ) {
    const tensors = Object.fromEntries(
      [0, 1].flatMap((l) => [
        [
          `base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`,
          { dtype: "F32" as const, shape: [2, 64], data: new Float32Array(128).fill(seed) },
        ],
        [
          `base_model.model.model.layers.${l}.self_attn.q_proj.lora_B.weight`,
          { dtype: "F32" as const, shape: [64, 2], data: new Float32Array(128).fill(seed) },
        ],
      ]),
    );
    const config = new TextEncoder().encode(
      JSON.stringify({ peft_type: "LORA", r: 2, target_modules: ["q_proj"] }),
    );
    return store.publishAdapter(run, {
      configBytes: config,
      weights: encodeSafetensors(tensors),
      draft: {
        createdAt: "2026-01-01T00:00:00.000Z",
        base: { fingerprint: null },
        adapterConfig: {},
        probe,
        training: null,
        publisher: { service: "test", instance: "t" },
      },
    });
  }

  /** The webhook event announcing version `version` of run "r", as published to `v`. */
  const published = (v: { key: string; sha256: string }, version: number) => ({
    type: "adapter.published" as const,
    run: "r",
    version,
    manifestKey: v.key,
    manifestSha256: v.sha256,
  });

  /** A rollback record of run "r" from `atVersion` back to `to`, as the trainer writes it. */
  const rollback = (store: AdapterStore, to: number, atVersion: number) =>
    store.writeRollback({
      schema: "loracast.rollback/v1",
      run: "r",
      to,
      atVersion,
      createdAt: "2026-01-01T00:00:00.000Z",
    });

  function manager(store: AdapterStore, maxVersions = 4, serveRevoked = false) {
    let now = 1_000;
    return new AdapterManager({
      store,
      spec,
      clock: { now: () => now++ },
      log: createLogger({}, { write: () => {} }),
      bounds: { maxVersions, maxBytes: 1e9 },
      maxRank: 64,
      runs: null,
      serveRevoked,
    });
  }

  it("activates newer versions, ignores stale events, and goes back only on a rollback", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const m = manager(store);
    const v1 = await publish(store, "r", 1);
    const v2 = await publish(store, "r", 2);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2);
    assert.ok(m.ready);

    await m.handleEvent(published(v1, 1));
    assert.equal(m.activeRecord("r")?.version, 2, "a stale event never downgrades");

    await rollback(store, 1, 2);
    await m.handleEvent({
      type: "adapter.rolled_back",
      run: "r",
      version: 1,
      manifestKey: v1.key,
      manifestSha256: v1.sha256,
    });
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.equal(m.cache.get("r", 2)?.state, "revoked");
    assert.match(
      m.cache.get("r", 2)?.reason ?? "",
      /^r@2 was revoked by rollback to v1 at 2026-01-01T00:00:00\.000Z$/,
    );

    // A late webhook for the revoked version must not bring it back.
    await m.handleEvent(published(v2, 2));
    assert.equal(m.activeRecord("r")?.version, 1);
  });

  it("re-reads rollbacks alongside a webhook's pull, and activates an already staged version without the store", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const m = manager(store);
    await publish(store, "r", 1);
    await m.reconcile();
    // Revoked while its webhook was in flight, the rollback's own event not yet delivered.
    const v2 = await publish(store, "r", 2);
    await rollback(store, 1, 2);
    await m.handleEvent(published(v2, 2));
    assert.equal(m.activeRecord("r")?.version, 1, "the pull's rollback re-read keeps v2 out");

    const v3 = await publish(store, "r", 3);
    assert.ok((await m.ensure("r", 3)).ok);
    assert.equal(m.cache.get("r", 3)?.state, "staged");
    const list = objects.list.bind(objects);
    let lists = 0;
    objects.list = (...args) => {
      lists++;
      return list(...args);
    };
    await m.handleEvent(published(v3, 3));
    assert.equal(m.activeRecord("r")?.version, 3);
    assert.equal(lists, 0, "activating a staged version lists nothing");
  });

  it("downloads a version into the buffer of the version evicted to make room for it", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const m = manager(store, 2);
    for (const version of [1, 2]) await m.handleEvent(published(await publish(store, "r", version), version));
    const oldest = m.cache.get("r", 1)?.adapter?.weights;
    assert.ok(oldest !== undefined);
    await m.handleEvent(published(await publish(store, "r", 3), 3));
    assert.equal(m.cache.get("r", 1)?.state, "retired");
    assert.equal(m.cache.get("r", 1)?.adapter, null, "evicted");
    const v3 = m.cache.get("r", 3)?.adapter;
    assert.equal(v3?.weights, oldest, "the evicted buffer received the download");
    const a = v3?.verified.modules[0]?.a;
    assert.ok(a !== undefined);
    const values = new Float32Array(a.bytes.buffer, a.bytes.byteOffset, a.bytes.byteLength / 4);
    assert.ok(
      values.every((x) => x === 3),
      "and holds the new version's values",
    );
    assert.equal(m.activeRecord("r")?.version, 3);
  });

  it("fetches a pinned older version on demand without activating it", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const m = manager(store);
    await publish(store, "r", 1);
    await publish(store, "r", 2);
    await m.reconcile();
    const r = await m.ensure("r", 1);
    assert.ok(r.ok);
    assert.equal(r.value.state, "retired", "older than the active version, as the trainer says");
    const release = m.pin(r.value);
    assert.equal(m.activeRecord("r")?.version, 2);
    release();
  });

  it("keeps no record of a version the store does not have, so made-up names cannot pile up", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const m = manager(store);
    await publish(store, "r", 1);
    await m.reconcile();
    for (let v = 2; v < 50; v++) {
      const r = await m.ensure("ghost", v);
      assert.ok(!r.ok && r.error.kind === "unavailable");
      assert.ok(!(await m.ensure("r", v)).ok);
    }
    assert.deepEqual(
      m.cache.all().map((x) => `${x.run}@${x.version}`),
      ["r@1"],
    );
    // Once the version lands, naming it pulls it.
    await publish(store, "r", 2);
    assert.ok((await m.ensure("r", 2)).ok);
  });

  it("refuses a revoked version by name, naming the rollback, and counts the refusal", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const m = manager(store);
    await publish(store, "r", 1);
    await publish(store, "r", 2);
    await m.reconcile();
    await rollback(store, 1, 2);
    // Before this generator hears of the rollback: a pull of an unloaded version re-reads the records.
    const fresh = manager(store);
    const early = await fresh.ensure("r", 2);
    assert.ok(!early.ok);
    assert.equal(early.error.kind, "revoked");
    assert.equal(early.error.message, "r@2 was revoked by rollback to v1 at 2026-01-01T00:00:00.000Z");
    assert.equal(fresh.activeRecord("r"), undefined, "nothing activated by a request");

    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1);
    const named = await m.ensure("r", 2);
    assert.ok(!named.ok && named.error.kind === "revoked");
    assert.deepEqual(m.stats.revokedRequests.get("r"), { refused: 1, served: 0 });
    const current = await m.current("r");
    assert.ok(current?.ok);
    assert.equal(current.value.version, 1);
  });

  it("knows which runs the store has versions of, active here or not", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const m = manager(store);
    await publish(store, "r", 1);
    assert.equal(m.hasVersions("r"), false, "not listed before a reconcile");
    await m.reconcile();
    assert.equal(m.hasVersions("r"), true);
    assert.equal(m.hasVersions("nope"), false);
  });

  it("serves a revoked version by name when the operator allows it, and still never activates it", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    await publish(store, "r", 1);
    await publish(store, "r", 2);
    await rollback(store, 1, 2);
    const m = manager(store, 4, true);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.equal(m.cache.get("r", 2)?.state, "revoked", "listed as revoked without a pull");
    assert.equal(m.cache.get("r", 2)?.adapter, null);
    const r = await m.ensure("r", 2);
    assert.ok(r.ok);
    assert.equal(r.value.state, "revoked");
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.deepEqual(m.stats.revokedRequests.get("r"), { refused: 0, served: 1 });
  });

  it("runs `<run>` on the rollback's target while that target is still being pulled", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const m = manager(store, 1);
    const v1 = await publish(store, "r", 1);
    await m.reconcile();
    await publish(store, "r", 2);
    await m.reconcile();
    assert.equal(m.cache.get("r", 1)?.adapter, null, "v1 was evicted");
    await rollback(store, 1, 2);
    let opened!: () => void;
    const gate = new Promise<void>((resolve) => {
      opened = resolve;
    });
    let reached!: () => void;
    const atGate = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const get = objects.get.bind(objects);
    objects.get = async (key) => {
      if (key === v1.key) {
        reached();
        await gate;
      }
      return get(key);
    };
    const handled = m.handleEvent({ ...published(v1, 1), type: "adapter.rolled_back" });
    await atGate;
    assert.equal(m.activeRecord("r")?.version, 2, "v2 is still the active record");
    assert.equal(m.servingVersion("r"), 1);
    let settled = false;
    const current = m.current("r").then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "the request waits for v1 rather than run on revoked v2");
    opened();
    const r = await current;
    assert.ok(r?.ok);
    assert.equal(r.value.version, 1);
    await handled;
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.equal(m.cache.get("r", 2)?.state, "revoked");
  });

  it("scores the probe before activating, and refuses a version whose probe disagrees", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    // A stand-in engine: every next-token log-probability is −seed/10 for an adapter filled with seed.
    const scored: number[][] = [];
    const m = new AdapterManager({
      store,
      spec,
      clock: { now: () => 0 },
      log: createLogger({}, { write: () => {} }),
      bounds: { maxVersions: 4, maxBytes: 1e9 },
      maxRank: 64,
      runs: null,
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
    });
    await publish(store, "p", 1, { tokens: [[5, 6, 7]], logprobs: [[-0.1, -0.1]] });
    await m.reconcile();
    assert.equal(m.activeRecord("p")?.version, 1);
    assert.deepEqual(scored, [[5, 6, 7]]);

    await publish(store, "p", 2, { tokens: [[5, 6, 7]], logprobs: [[-0.2, -0.25]] });
    await m.reconcile();
    assert.equal(m.activeRecord("p")?.version, 1, "the previous version keeps serving");
    const failed = m.cache.all().find((r) => r.run === "p" && r.version === 2);
    assert.equal(failed?.state, "failed");
    assert.match(failed?.reason ?? "", /probe logprobs differ from the trainer's by 0\.0500/);
  });

  /** A manager on `store` whose clock the test moves (`clock.now = …`). */
  function clocked(store: AdapterStore) {
    const clock = { t: 10_000, now: () => clock.t };
    const m = new AdapterManager({
      store,
      spec,
      clock,
      log: createLogger({}, { write: () => {} }),
      bounds: { maxVersions: 4, maxBytes: 1e6 },
      maxRank: 64,
      runs: null,
    });
    return { m, clock };
  }

  it("refuses an event that announces other manifest bytes, without failing the version", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const { m } = clocked(store);
    const v1 = await publish(store, "r", 1);
    const v2 = await publish(store, "r", 2);
    await m.handleEvent({ ...published(v2, 2), manifestSha256: v1.sha256 });
    assert.equal(m.stats.badEvents, 1);
    assert.notEqual(m.cache.get("r", 2)?.state, "failed", "a bad event is not a bad version");
    assert.equal(m.stats.failures, 0);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2);
  });

  it("retries a version whose blob went missing, with backoff, and activates it once restored", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const { m, clock } = clocked(store);
    await publish(store, "r", 1);
    const v2 = await publish(store, "r", 2);
    const blob = v2.manifest.adapter.files.find((f) => f.name === "adapter_model.safetensors")?.blob ?? "";
    const bytes = await objects.get(blob);
    assert.ok(bytes !== null);
    await objects.delete(blob);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.equal(m.cache.get("r", 2)?.state, "failed");
    assert.match(m.cache.get("r", 2)?.reason ?? "", /is missing from the store \(retried in 2 s\)$/);

    await objects.put(blob, bytes);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1, "not before its backoff");
    clock.t += 2_000;
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2);
    assert.equal(m.cache.get("r", 2)?.retry, null);
  });

  it("fails a manifest that announces 2^40 bytes at once, naming the blob, for good", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const { m, clock } = clocked(store);
    const v1 = await publish(store, "r", 1);
    const [config, weights] = v1.manifest.adapter.files;
    assert.ok(config !== undefined && weights !== undefined);
    const { schema: _s, run: _r, version: _v, parent: _p, ...draft } = v1.manifest;
    await store.publishVersion("r", {
      ...draft,
      adapter: { config: {}, files: [config, { ...weights, bytes: 2 ** 40 }] },
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

  it("withdraws an active version whose manifest the store no longer holds as verified, and returns to it once restored", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const { m, clock } = clocked(store);
    const v1 = await publish(store, "r", 1);
    const v2 = await publish(store, "r", 2);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2);
    const genuine = await objects.get(v2.key);
    const copied = await objects.get(v1.key);
    assert.ok(genuine !== null && copied !== null);
    await objects.put(v2.key, copied);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1, "the newest version that verifies now");
    const withdrawn = m.cache.get("r", 2);
    assert.equal(withdrawn?.state, "failed");
    assert.match(withdrawn?.reason ?? "", /names r@1, which belongs elsewhere \(retried in 2 s\)$/);
    assert.equal(withdrawn?.adapter, null, "its weights are dropped once another version serves");
    assert.deepEqual(
      store.refusals.list().map((r) => [r.key, r.code]),
      [[v2.key, "misplaced"]],
    );

    await objects.put(v2.key, genuine);
    clock.t += 10_000;
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2, "restored, it verifies and activates again");
    assert.deepEqual(store.refusals.list(), [], "an accepted read takes it off the refused list");
  });

  it("keeps serving a withdrawn version that nothing can replace, and reinstates it once restored", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const m = manager(store);
    const v1 = await publish(store, "r", 1);
    await m.reconcile();
    const genuine = await objects.get(v1.key);
    assert.ok(genuine !== null);
    // Its only object: the run is not even listed any more.
    await objects.delete(v1.key);
    await m.reconcile();
    const record = m.activeRecord("r");
    assert.deepEqual([record?.version, record?.state], [1, "failed"]);
    assert.match(record?.reason ?? "", /is missing from the store/);
    assert.ok((await m.current("r"))?.ok, "requests for the run still run on what was verified");
    await objects.put(v1.key, genuine);
    await m.reconcile();
    assert.deepEqual([m.activeRecord("r")?.state, m.activeRecord("r")?.reason], ["active", null]);
  });
});
