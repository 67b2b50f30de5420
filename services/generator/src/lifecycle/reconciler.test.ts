import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { manifestKey } from "@loracast/shared/store";
import { HEAD_GRACE_MS } from "./head-watch.ts";
import { managerFor, memoryStore, publish, published, rollback, signedStores } from "./lifecycle-fixture.ts";
import { CANDIDATES_PER_PASS } from "./reconciler.ts";

describe("reconciler: which version a run serves", () => {
  it("activates newer versions, ignores stale events, and goes back only on a rollback", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store);
    const v1 = await publish(store, "r", 1);
    const v2 = await publish(store, "r", 2);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2);
    assert.ok(m.ready);

    await m.handleEvent(published(v1));
    assert.equal(m.activeRecord("r")?.version, 2, "a stale event never downgrades");

    await rollback(store, 1, 2);
    await m.handleEvent(published(v1, "adapter.rolled_back"));
    assert.equal(m.activeRecord("r")?.version, 1);
    assert.equal(m.cache.get("r", 2)?.state, "revoked");
    assert.match(
      m.cache.get("r", 2)?.reason ?? "",
      /^r@2 was revoked by rollback to v1 at 2026-01-01T00:00:00\.000Z$/,
    );

    // A late webhook for the revoked version must not bring it back.
    await m.handleEvent(published(v2));
    assert.equal(m.activeRecord("r")?.version, 1);
  });

  it("activates a newer version from a webhook alone, and counts each activation", async () => {
    const { store } = memoryStore();
    const { m, lines } = managerFor(store);
    await m.handleEvent(published(await publish(store, "r", 1)));
    await m.handleEvent(published(await publish(store, "r", 2)));
    assert.equal(m.activeRecord("r")?.version, 2);
    assert.equal(m.cache.get("r", 1)?.state, "retired");
    assert.equal(m.stats.activations, 2);
    assert.deepEqual(
      lines.filter((l) => l.msg === "adapter activated").map((l) => [l.version, l.previous]),
      [
        [1, null],
        [2, 1],
      ],
    );
  });

  it("ignores events of runs it does not follow", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store, { runs: ["mine"] });
    await m.handleEvent(published(await publish(store, "other", 1)));
    assert.equal(m.activeRecord("other"), undefined);
    assert.deepEqual(m.cache.all(), []);
  });

  it("re-reads rollbacks alongside a webhook's pull, and activates an already staged version without the store", async () => {
    const { objects, store } = memoryStore();
    const { m } = managerFor(store);
    await publish(store, "r", 1);
    await m.reconcile();
    // Revoked while its webhook was in flight, the rollback's own event not yet delivered.
    const v2 = await publish(store, "r", 2);
    await rollback(store, 1, 2);
    await m.handleEvent(published(v2));
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
    await m.handleEvent(published(v3));
    assert.equal(m.activeRecord("r")?.version, 3);
    assert.equal(lists, 0, "activating a staged version lists nothing");
  });

  it("refuses an event that announces other manifest bytes, without failing the version", async () => {
    const { store } = memoryStore();
    const { m } = managerFor(store);
    const v1 = await publish(store, "r", 1);
    const v2 = await publish(store, "r", 2);
    await m.handleEvent({ ...published(v2), manifestSha256: v1.sha256 });
    assert.equal(m.stats.badEvents, 1);
    assert.notEqual(m.cache.get("r", 2)?.state, "failed", "a bad event is not a bad version");
    assert.match(
      m.cache.get("r", 2)?.reason ?? "",
      /^event refused: manifest .* does not match the announced/,
    );
    assert.equal(m.stats.failures, 0);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2);
  });

  it(`pulls at most ${CANDIDATES_PER_PASS} failing versions per pass, but refused manifests cost none of them`, async () => {
    const { objects, store } = memoryStore();
    const { m } = managerFor(store);
    await publish(store, "r", 1);
    // Three versions whose weights blob is gone: each costs a download attempt.
    for (let seed = 2; seed <= 4; seed++) {
      const v = await publish(store, "r", seed);
      const blob = v.manifest.adapter.files.find((f) => f.name === "adapter_model.safetensors")?.blob;
      assert.ok(blob !== undefined);
      await objects.delete(blob);
    }
    await m.reconcile();
    assert.equal(m.activeRecord("r"), undefined, "the pass gave up before v1");
    assert.deepEqual(
      [2, 3, 4].map((v) => m.cache.get("r", v)?.state),
      ["failed", "failed", "failed"],
    );
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1, "failed versions wait for their retry: v1 is reached");

    // Junk under the next keys: refused on read, with no download, and the pass goes on.
    const { store: junkStore, objects: junk } = memoryStore();
    const { m: fresh } = managerFor(junkStore);
    await publish(junkStore, "j", 1);
    for (let v = 2; v <= 2 + CANDIDATES_PER_PASS; v++) await junk.put(manifestKey("j", v), Buffer.from("{"));
    await fresh.reconcile();
    assert.equal(fresh.activeRecord("j")?.version, 1, "one pass gets past every refused manifest");
  });

  it("holds a run whose store lists versions but holds no signed head (missing_head), and releases it once one appears", async () => {
    const { trainer, reader } = signedStores();
    const { m, clock } = managerFor(reader);
    const v1 = await publish(trainer, "r", 1);
    await m.reconcile();
    assert.equal(m.activeRecord("r"), undefined, "deferred within the grace");
    clock.t += HEAD_GRACE_MS;
    await m.reconcile();
    assert.deepEqual(
      m.heads.all().map((f) => f.finding),
      ["missing_head"],
    );
    assert.match(
      m.held("r") ?? "",
      /^run r is held until its store is repaired: the store lists versions of r/,
    );
    await m.handleEvent(published(v1));
    assert.equal(m.activeRecord("r"), undefined, "an event activates nothing of a held run");
    const named = await m.ensure("r", 1);
    assert.ok(!named.ok && named.error.kind === "held", "nor does a request that names a version");

    await trainer.writeHead({
      schema: "loracast.head/v1",
      run: "r",
      version: 1,
      rollbacks: 0,
      issuedAt: new Date(clock.t).toISOString(),
      expiresAt: new Date(clock.t + 86_400_000).toISOString(),
    });
    await m.handleEvent(published(v1));
    assert.equal(m.activeRecord("r")?.version, 1, "the event's pass reads the head, and the hold lifts");
    assert.equal(m.held("r"), null);
  });

  it("withdraws an active version whose manifest the store no longer holds as verified, and returns to it once restored", async () => {
    const { objects, store } = memoryStore();
    const { m, clock } = managerFor(store);
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
    assert.equal(m.stats.failures, 1, "the withdrawal counts as a failure");
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
    const { objects, store } = memoryStore();
    const { m } = managerFor(store);
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

  it("a publish landing while a pass lists the run's versions is no stale store state", async () => {
    const { objects, trainer, reader } = signedStores();
    const { m, clock, lines } = managerFor(reader);
    const head = (version: number) =>
      trainer.writeHead({
        schema: "loracast.head/v1",
        run: "r",
        version,
        rollbacks: 0,
        issuedAt: new Date(clock.t).toISOString(),
        expiresAt: new Date(clock.t + 86_400_000).toISOString(),
      });
    await publish(trainer, "r", 1);
    await head(1);
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 1);
    // The trainer publishes v2 (manifest, then head) just after the pass's versions listing.
    const list = objects.list.bind(objects);
    let armed = true;
    objects.list = async (prefix, startAfter) => {
      const keys = await list(prefix, startAfter);
      if (armed && prefix === "runs/r/versions/") {
        armed = false;
        clock.t += 1000;
        await publish(trainer, "r", 2);
        await head(2);
      }
      return keys;
    };
    await m.reconcile();
    assert.equal(armed, false, "the publish landed during the pass");
    assert.deepEqual(
      lines.filter((l) => l.msg === "store state is stale"),
      [],
    );
    await m.reconcile();
    assert.equal(m.activeRecord("r")?.version, 2, "the next pass finds v2");
  });
});
