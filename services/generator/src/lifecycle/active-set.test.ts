import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { managerFor, memoryStore, publish, published, rollback } from "./lifecycle-fixture.ts";

/** A gate the test opens: `wait` blocks until `open` is called; `reached` resolves once one waits. */
function gate() {
  let open!: () => void;
  let reach!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  const reached = new Promise<void>((r) => {
    reach = r;
  });
  return {
    open,
    reached,
    wait: () => {
      reach();
      return opened;
    },
  };
}

describe("active set: what requests run on", () => {
  it("activates atomically: until the swap every request runs on the old version, after it on the new", async () => {
    const { objects, store } = memoryStore();
    const { m } = managerFor(store);
    await m.handleEvent(published(await publish(store, "r", 1)));
    const v2 = await publish(store, "r", 2);
    const g = gate();
    const get = objects.get.bind(objects);
    objects.get = async (key) => {
      if (key === v2.key) await g.wait();
      return get(key);
    };
    const handled = m.handleEvent(published(v2));
    await g.reached;
    const during = await m.current("r");
    assert.ok(during?.ok);
    assert.equal(during.value.version, 1, "the pull under way changes nothing requests see");
    assert.equal(m.cache.get("r", 2)?.pulling, "downloading");
    const release = m.pin(during.value);
    g.open();
    await handled;
    const after = await m.current("r");
    assert.ok(after?.ok);
    assert.equal(after.value.version, 2);
    assert.deepEqual(
      m.cache.all().map((r) => [r.version, r.state]),
      [
        [1, "retired"],
        [2, "active"],
      ],
      "exactly one active version",
    );
    assert.notEqual(m.cache.get("r", 1)?.adapter, null, "the request that pinned v1 keeps its weights");
    release();
  });

  it("evicts under CACHE_MAX_MB, keeping active, pinned and alias-held bytes, and trims once a pin is released", async () => {
    const { store } = memoryStore();
    const bytes = (await publish(store, "r", 1)).manifest.adapter.files[1]?.bytes ?? 0;
    for (let seed = 2; seed <= 4; seed++) await publish(store, "r", seed);
    // Room for three versions' weights.
    const { m, clock } = managerFor(store, { bounds: { maxVersions: 10, maxBytes: 3 * bytes } });
    await m.reconcile();
    const loaded = () => m.cache.all().flatMap((r) => (r.adapter === null ? [] : [r.version]));
    const named = [];
    for (const v of [1, 2, 3]) {
      clock.t += 1;
      const r = await m.ensure("r", v);
      assert.ok(r.ok);
      named.push(r.value);
    }
    const v2 = named[1];
    assert.ok(v2 !== undefined);
    assert.deepEqual(loaded(), [2, 3, 4], "v3's download evicted the least recently used, v1");
    assert.equal(m.cache.heldBytes(), 3 * bytes);

    // A request pins v2, the least recently used; an alias's local adapter then takes one version's room.
    const release = m.pin(v2);
    const unhold = m.cache.hold(bytes);
    assert.deepEqual(loaded(), [2, 4], "active v4 and pinned v2 stay; v3 is evicted instead");
    assert.equal(m.cache.get("r", 3)?.state, "retired", "eviction keeps the state");
    assert.equal(m.cache.heldBytes(), 3 * bytes);
    unhold();
    release();
    const again = await m.ensure("r", 1);
    assert.ok(again.ok, "an evicted version named again is pulled again");
    assert.deepEqual(loaded(), [1, 2, 4]);
    assert.equal(
      m.cache.versionBytesHeld([v2]),
      2 * bytes,
      "what no eviction frees: active v4 and the pinned v2",
    );
  });

  it("fetches a pinned older version on demand without activating it", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store);
    await publish(store, "r", 1);
    await publish(store, "r", 2);
    await m.reconcile();
    const r = await m.ensure("r", 1);
    assert.ok(r.ok);
    assert.equal(r.value.state, "retired", "older than the active version, as the trainer says");
    const release = m.pin(r.value);
    assert.equal(r.value.pins, 1);
    assert.equal(m.activeRecord("r")?.version, 2);
    release();
    release();
    assert.equal(r.value.pins, 0, "a release is idempotent");
  });

  it("refuses a revoked version by name, naming the rollback, and counts the refusal", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store);
    await publish(store, "r", 1);
    await publish(store, "r", 2);
    await m.reconcile();
    await rollback(store, 1, 2);
    // Before this generator hears of the rollback: a pull of an unloaded version re-reads the records.
    const { m: fresh } = managerFor(store);
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
    const { store } = memoryStore();
    const { m } = managerFor(store);
    await publish(store, "r", 1);
    assert.equal(m.hasVersions("r"), false, "not listed before a reconcile");
    await m.reconcile();
    assert.equal(m.hasVersions("r"), true);
    assert.equal(m.hasVersions("nope"), false);
  });

  it("serves a revoked version by name when the operator allows it, and still never activates it", async () => {
    const { store } = memoryStore();
    await publish(store, "r", 1);
    await publish(store, "r", 2);
    await rollback(store, 1, 2);
    const { m } = managerFor(store, { serveRevoked: true });
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
    const { objects, store } = memoryStore();
    const { m } = managerFor(store, { bounds: { maxVersions: 1, maxBytes: 1e6 } });
    const v1 = await publish(store, "r", 1);
    await m.reconcile();
    await publish(store, "r", 2);
    await m.reconcile();
    assert.equal(m.cache.get("r", 1)?.adapter, null, "v1 was evicted");
    await rollback(store, 1, 2);
    const g = gate();
    const get = objects.get.bind(objects);
    objects.get = async (key) => {
      if (key === v1.key) await g.wait();
      return get(key);
    };
    const handled = m.handleEvent(published(v1, "adapter.rolled_back"));
    await g.reached;
    assert.equal(m.activeRecord("r")?.version, 2, "v2 is still the active record");
    assert.equal(m.servingVersion("r"), 1);
    let settled = false;
    const current = m.current("r").then((r) => {
      settled = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "the request waits for v1 rather than run on revoked v2");
    g.open();
    const r = await current;
    assert.ok(r?.ok);
    assert.equal(r.value.version, 1);
    await handled;
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.equal(m.cache.get("r", 2)?.state, "revoked");
  });
});
