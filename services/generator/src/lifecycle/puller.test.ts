import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatVersionRef } from "@loracast/shared/manifest";
import { decodeSafetensors } from "@loracast/shared/safetensors";
import { StoreError } from "@loracast/shared/store";
import { deferRefused, markFailed, settledFailure } from "./failures.ts";
import { managerFor, memoryStore, publish, published } from "./lifecycle-fixture.ts";
import { newVersionRecord } from "./version-cache.ts";

describe("puller: one pull per version, and retries with backoff", () => {
  it("retries a version whose blob went missing, with backoff, and activates it once restored", async () => {
    const { objects, store } = memoryStore();
    const { m, clock } = managerFor(store);
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

  it("doubles the wait from 2 s up to 5 minutes for a store fault, and fails a version fault for good", () => {
    const r = newVersionRecord("r", 1, "reconcile", 0);
    const waits = Array.from({ length: 10 }, () => markFailed(r, "blob gone", "store", 0));
    assert.deepEqual(
      waits,
      [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000],
    );
    assert.equal(r.reason, "blob gone (retried in 300 s)");
    assert.ok(settledFailure(r, 299_999));
    assert.ok(!settledFailure(r, 300_000), "due once its wait is over");

    const bad = newVersionRecord("r", 2, "reconcile", 0);
    assert.equal(markFailed(bad, "bad weights", "version", 0), null);
    assert.deepEqual([bad.state, bad.reason, bad.retry], ["failed", "bad weights", null]);
    assert.ok(settledFailure(bad, Number.MAX_SAFE_INTEGER), "never retried");
  });

  it("reads unchanged refused manifest bytes again later and later, up to 30 minutes, without judging them again", async () => {
    const r = newVersionRecord("r", 1, "reconcile", 0);
    const reasons = Array.from({ length: 12 }, () => deferRefused(r, "refused", 0));
    assert.equal(reasons[0], "refused (unchanged; read again in 2 s)");
    assert.equal(reasons.at(-1), "refused (unchanged; read again in 1800 s)");

    const { objects, store } = memoryStore();
    const { m, clock } = managerFor(store);
    const v1 = await publish(store, "r", 1);
    await objects.put(v1.key, Buffer.from("not json"));
    await m.reconcile();
    assert.match(m.cache.get("r", 1)?.reason ?? "", /not valid JSON \(retried in 2 s\)$/);
    clock.t += 2_000;
    await m.reconcile();
    assert.match(m.cache.get("r", 1)?.reason ?? "", /not valid JSON \(unchanged; read again in 4 s\)$/);
    assert.equal(m.stats.failures, 1, "the same bytes are not failed (nor counted) again");
    assert.equal(store.refusals.counters()[0]?.count, 1, "nor refused again");
  });

  it("keeps a version's state through a store outage, and pulls it on the next pass", async () => {
    const { objects, store } = memoryStore();
    const { m, lines } = managerFor(store);
    const v1 = await publish(store, "r", 1);
    const get = objects.get.bind(objects);
    objects.get = async (key) => {
      if (key === v1.key) throw new StoreError("unavailable", "the store is down");
      return get(key);
    };
    await m.handleEvent(published(v1));
    const record = m.cache.get("r", 1);
    assert.deepEqual(
      [record?.state, record?.reason, record?.pulling],
      ["announced", "the store is down", null],
    );
    assert.equal(m.stats.failures, 0, "an outage is not the version's failure");
    assert.ok(lines.some((l) => l.msg === "adapter pull interrupted"));
    objects.get = get;
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1);
  });

  it("shares one pull between concurrent callers", async () => {
    const { objects, store } = memoryStore();
    const { m } = managerFor(store);
    const v1 = await publish(store, "r", 1);
    const get = objects.get.bind(objects);
    let manifestReads = 0;
    objects.get = (key) => {
      if (key === v1.key) manifestReads++;
      return get(key);
    };
    const [a, b] = await Promise.all([m.ensure("r", 1), m.ensure("r", 1)]);
    assert.ok(a.ok && b.ok);
    assert.equal(a.value, b.value);
    assert.equal(manifestReads, 2, "one pull: a raw read and the verifying read of its manifest");
  });

  it("keeps no record of a version the store does not have, so made-up names cannot pile up", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store);
    await publish(store, "r", 1);
    await m.reconcile();
    for (let v = 2; v < 50; v++) {
      const r = await m.ensure("ghost", v);
      assert.ok(!r.ok && r.error.kind === "unavailable");
      assert.ok(!(await m.ensure("r", v)).ok);
    }
    assert.deepEqual(
      m.cache.all().map((x) => formatVersionRef(x.run, x.version)),
      ["r@1"],
    );
    // Once the version lands, naming it pulls it.
    await publish(store, "r", 2);
    assert.ok((await m.ensure("r", 2)).ok);
  });

  it("downloads a version into the buffer of the version evicted to make room for it", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store, { bounds: { maxVersions: 2, maxBytes: 1e6 } });
    for (const seed of [1, 2]) await m.handleEvent(published(await publish(store, "r", seed)));
    const oldest = m.cache.get("r", 1)?.adapter?.weights;
    assert.ok(oldest !== undefined);
    await m.handleEvent(published(await publish(store, "r", 3)));
    assert.equal(m.cache.get("r", 1)?.state, "retired");
    assert.equal(m.cache.get("r", 1)?.adapter, null, "evicted");
    const v3 = m.cache.get("r", 3)?.adapter;
    assert.equal(v3?.weights, oldest, "the evicted buffer received the download");
    assert.ok(v3 != null);
    const file = decodeSafetensors(v3.weights);
    assert.ok(file.ok);
    const values = file.value.tensors
      .get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
      ?.array();
    assert.ok(
      values?.every((x) => x === 3),
      "and holds the new version's values",
    );
    assert.equal(m.activeRecord("r")?.version, 3);
  });
});
