import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runHeadSchema } from "@loracast/shared/manifest";
import { createLogger } from "@loracast/shared/platform";
import { encodeSafetensors } from "@loracast/shared/safetensors";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import {
  AdapterStore,
  blobKey,
  headKey,
  MemoryObjectStore,
  manifestKey,
  rollbackKey,
  sha256Hex,
} from "@loracast/shared/store";
import type { Outbox } from "@loracast/shared/webhooks";
import { RunLedger } from "./ledger/index.ts";
import { Publisher } from "./publisher.ts";
import { SubscriptionRegistry } from "./subscriptions.ts";

const HOUR = 3_600_000;

function adapter(seed: number) {
  const tensors = {
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
      dtype: "F32" as const,
      shape: [2, 8],
      data: new Float32Array(16).fill(seed),
    },
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {
      dtype: "F32" as const,
      shape: [8, 2],
      data: new Float32Array(16).fill(seed),
    },
  };
  const config = { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q_proj"] };
  return { config: new TextEncoder().encode(JSON.stringify(config)), weights: encodeSafetensors(tensors) };
}

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** A publisher on an in-memory store, with its ledger in a fresh temp dir. */
async function setup(onPublished?: (phasesMs: Readonly<Record<string, number>>) => void) {
  const objects = new MemoryObjectStore();
  const signer = Signer.generate();
  const store = new AdapterStore(objects, { signer, trusted: new TrustedKeys([signer.publicKey]) });
  const clock = { t: Date.parse("2026-01-01T00:00:00Z"), now: () => clock.t };
  const log = createLogger({}, { write: () => {} });
  const dir = await mkdtemp(join(tmpdir(), "ledger-"));
  dirs.push(dir);
  const publisher = new Publisher({
    store,
    // The outbox is not under test here: events are dropped.
    outbox: { enqueue: async () => {} } as unknown as Outbox,
    subscriptions: new SubscriptionRegistry("/nonexistent/subscriptions.json", []),
    clock,
    log,
    instance: "t",
    spec: null,
    ledger: new RunLedger({ store, dir, clock, log, headTtlMs: 4 * HOUR }),
    ...(onPublished === undefined ? {} : { onPublished }),
  });
  return { objects, store, clock, publisher };
}

describe("publisher: signed heads", () => {
  it("signs a head per publish, re-signs it with a fresh expiry, and never lowers it below what it published", async () => {
    const { objects, store, clock, publisher } = await setup();
    for (const seed of [1, 2]) {
      const files = adapter(seed);
      assert.ok((await publisher.publish("r", files.config, files.weights)).ok);
    }
    const head = async () => {
      const read = await store.readHead("r");
      assert.ok(read?.ok);
      return runHeadSchema.parse(read.value);
    };
    assert.deepEqual(await head(), {
      schema: "loracast.head/v1",
      run: "r",
      version: 2,
      rollbacks: 0,
      issuedAt: "2026-01-01T00:00:00.000Z",
      expiresAt: "2026-01-01T04:00:00.000Z",
    });

    // A bucket writer hides v2; the refresh re-signs, still naming v2, and the trainer reports it missing.
    await objects.delete(manifestKey("r", 2));
    clock.t += HOUR;
    await publisher.refreshHeads();
    assert.equal((await head()).version, 2);
    assert.equal((await head()).expiresAt, "2026-01-01T05:00:00.000Z");
    const listed = await publisher.versions("r");
    assert.equal(listed.current, 1);
    assert.deepEqual(
      listed.versions.map((v) => [v.version, v.state]),
      [
        [1, "active"],
        [2, "failed"],
      ],
    );
    assert.match(
      listed.versions[1]?.reason ?? "",
      /runs\/r\/versions\/000000000002\.json is missing from the store/,
    );
  });

  it("puts back a deleted head and rollback record from its ledger on the refresh pass, and counts it", async () => {
    const { objects, store, publisher } = await setup();
    for (const seed of [1, 2, 3]) {
      const files = adapter(seed);
      assert.ok((await publisher.publish("r", files.config, files.weights)).ok);
    }
    assert.ok((await publisher.rollback("r", 1)).ok);
    const key = rollbackKey("r", 3, 1);
    const record = await objects.get(key);
    await Promise.all([objects.delete(key), objects.delete(headKey("r"))]);
    await publisher.refreshHeads();
    assert.deepEqual(await objects.get(key), record);
    const head = await store.readHead("r");
    assert.deepEqual(head?.ok === true ? [head.value.version, head.value.rollbacks] : null, [3, 1]);
    assert.deepEqual(publisher.recordsRepaired, { rollback: 1, head: 1 });
    // Altered in place: the versions read repairs it, and says so.
    await objects.put(key, new TextEncoder().encode("{not json"));
    const listed = await publisher.versions("r");
    assert.equal(listed.current, 1);
    assert.deepEqual(
      listed.store.repaired.map((r) => [r.record, r.key, r.found]),
      [["rollback", key, "altered"]],
    );
    assert.deepEqual(await objects.get(key), record);
  });
});

describe("publisher: the weights' hash from the caller", () => {
  it("validates before waiting for a hash still computing, and uploads under the hash once it comes", async () => {
    const phases: Readonly<Record<string, number>>[] = [];
    const { objects, publisher } = await setup((p) => phases.push(p));
    const good = adapter(1);
    // Refused without the hash: validation does not wait for it (this one never settles).
    const broken = await publisher.publish("r", good.config, good.weights.subarray(1), {
      weightsSha256: new Promise<string>(() => {}),
    });
    assert.equal(broken.ok, false);
    assert.equal(broken.ok ? null : broken.error.code, "invalid_adapter");
    assert.deepEqual(await objects.list("blobs/"), []);

    const sha256 = sha256Hex(good.weights);
    let release: (hex: string) => void = () => {};
    const later = new Promise<string>((resolve) => {
      release = resolve;
    });
    const publishing = publisher.publish("r", good.config, good.weights, { weightsSha256: later });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await objects.list("blobs/"), [], "nothing is uploaded before the hash is known");
    release(sha256);
    const r = await publishing;
    assert.ok(r.ok);
    assert.equal(r.value.sha256, sha256);
    assert.ok((await objects.list("blobs/")).includes(blobKey(sha256)));
    assert.equal(typeof phases[0]?.hashWait, "number", "the wait for the hash is logged");

    // A hash given as a string is used as before, and no wait is logged.
    const next = adapter(2);
    const s = await publisher.publish("r", next.config, next.weights, {
      weightsSha256: sha256Hex(next.weights),
    });
    assert.ok(s.ok);
    assert.equal(s.value.version, 2);
    assert.equal(phases[1]?.hashWait, undefined);
  });
});
