/**
 * The publisher's write order while its blobs upload: the signature envelopes of the manifest and
 * the head go up beside the blobs, the manifest's bytes only once every blob is in the store, the
 * head's only once the manifest is; a failed upload leaves neither, and the next publish takes the
 * same version.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createLogger } from "@loracast/shared/platform";
import { encodeSafetensors } from "@loracast/shared/safetensors";
import { Signer, signatureKey, TrustedKeys } from "@loracast/shared/signing";
import {
  AdapterStore,
  blobKey,
  headKey,
  MemoryObjectStore,
  manifestKey,
  StoreError,
  sha256Hex,
} from "@loracast/shared/store";
import type { Outbox } from "@loracast/shared/webhooks";
import { RunLedger } from "./ledger/index.ts";
import { Publisher } from "./publisher.ts";
import { SubscriptionRegistry } from "./subscriptions.ts";

/** A two-factor adapter; `shared` encodes the weights into a SharedArrayBuffer, as the run loop does. */
function adapter(seed: number, shared = false) {
  const data = new Float32Array(16).fill(seed);
  const tensors = {
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
      dtype: "F32" as const,
      shape: [2, 8],
      data,
    },
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {
      dtype: "F32" as const,
      shape: [8, 2],
      data,
    },
  };
  const config = { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q_proj"] };
  const into = shared ? (size: number) => new Uint8Array(new SharedArrayBuffer(size)) : undefined;
  return {
    config: new TextEncoder().encode(JSON.stringify(config)),
    weights: encodeSafetensors(tensors, undefined, into),
  };
}

/**
 * An in-memory store that logs each put's start and end (`start <key>`, `end <key>`) and holds the
 * weights blob's put until `release` is called (or fails it, once, with `failNextWeights`).
 */
class GatedStore extends MemoryObjectStore {
  readonly events: string[] = [];
  private gate: Promise<void> | null = null;
  private open: () => void = () => {};
  failNextWeights = false;

  /** Holds the next weights upload until `release`. */
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open = resolve;
    });
  }

  release(): void {
    this.open();
  }

  override async put(
    key: string,
    body: Uint8Array,
    options: { ifNoneMatch?: boolean } = {},
  ): Promise<"written" | "exists"> {
    this.events.push(`start ${key}`);
    if (key.startsWith("blobs/") && body.byteLength > 100) {
      if (this.gate !== null) await this.gate;
      if (this.failNextWeights) {
        this.failNextWeights = false;
        this.events.push(`failed ${key}`);
        throw new StoreError("unavailable", `object store PUT ${key} failed: connection reset`);
      }
    }
    const r = await super.put(key, body, options);
    this.events.push(`end ${key}`);
    return r;
  }
}

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function setup() {
  const objects = new GatedStore();
  const signer = Signer.generate();
  const store = new AdapterStore(objects, { signer, trusted: new TrustedKeys([signer.publicKey]) });
  const clock = { now: () => Date.parse("2026-01-01T00:00:00Z") };
  const log = createLogger({}, { write: () => {} });
  const dir = await mkdtemp(join(tmpdir(), "ledger-"));
  dirs.push(dir);
  const ledger = new RunLedger({ store, dir, clock, log, headTtlMs: 3_600_000 });
  const publisher = new Publisher({
    store,
    outbox: { enqueue: async () => {} } as unknown as Outbox,
    subscriptions: new SubscriptionRegistry("/nonexistent/subscriptions.json", []),
    clock,
    log,
    instance: "t",
    spec: null,
    ledger,
  });
  /** The signature envelope's key of what `key` holds now. */
  const envelopeOf = async (key: string): Promise<string> => {
    const bytes = await objects.get(key);
    assert.ok(bytes !== null, `${key} is in the store`);
    return signatureKey(sha256Hex(bytes));
  };
  return { objects, store, ledger, publisher, envelopeOf };
}

/** Polls until `check` holds (the publisher's steps run on promises; no fixed sleeps). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(check(), what);
}

describe("publisher: write order during the upload", () => {
  it("sends both envelopes beside the blobs, then writes the manifest once they are up, then the head", async () => {
    const { objects, publisher, envelopeOf } = await setup();
    const files = adapter(1);
    const weights = blobKey(sha256Hex(files.weights));
    objects.hold();
    const publishing = publisher.publish("r", files.config, files.weights);
    // Both envelopes go up while the weights are still uploading; the manifest's bytes do not.
    await until(
      () => objects.events.filter((e) => e.startsWith("end signatures/")).length === 2,
      "the manifest's and the head's envelopes are written during the upload",
    );
    assert.ok(objects.events.includes(`start ${weights}`));
    assert.ok(!objects.events.some((e) => e.includes("runs/r/")), "no manifest or head before the blobs");
    objects.release();
    const r = await publishing;
    assert.ok(r.ok);
    assert.equal(r.value.version, 1);

    const at = (event: string): number => {
      const i = objects.events.indexOf(event);
      assert.ok(i >= 0, `${event} happened`);
      return i;
    };
    const manifest = manifestKey("r", 1);
    const head = headKey("r");
    assert.ok(at(`end ${weights}`) < at(`start ${manifest}`), "the manifest after its blobs");
    assert.ok(
      at(`end ${await envelopeOf(manifest)}`) < at(`start ${manifest}`),
      "the manifest after its envelope",
    );
    assert.ok(at(`end ${manifest}`) < at(`start ${head}`), "the head after the manifest");
    assert.ok(at(`end ${await envelopeOf(head)}`) < at(`start ${head}`), "the head after its envelope");
  });

  it("after an upload that fails, leaves no manifest and no new head, and the next publish takes that version", async () => {
    const { objects, store, ledger, publisher } = await setup();
    const first = adapter(1);
    assert.ok((await publisher.publish("r", first.config, first.weights)).ok);

    objects.failNextWeights = true;
    const second = adapter(2);
    await assert.rejects(publisher.publish("r", second.config, second.weights), /connection reset/);
    assert.deepEqual(await store.listVersions("r"), [1]);
    const head = await store.readHead("r");
    assert.equal(head?.ok === true ? head.value.version : null, 1, "the head still names version 1");
    assert.equal(await ledger.newestVersion("r"), 1, "the ledger recorded nothing for the failed one");

    const r = await publisher.publish("r", second.config, second.weights);
    assert.ok(r.ok);
    assert.equal(r.value.version, 2);
    const read = await store.readManifest(manifestKey("r", 2));
    assert.ok(read?.ok);
    assert.equal(read.value.manifest.parent, 1);
    const next = await store.readHead("r");
    assert.equal(next?.ok === true ? next.value.version : null, 2);
  });

  it("signs the head for the version it got when another publisher took the one it numbered", async () => {
    const { objects, store, ledger, publisher } = await setup();
    const files = adapter(1);
    objects.hold();
    const publishing = publisher.publish("r", files.config, files.weights);
    await until(
      () => objects.events.filter((e) => e.startsWith("end signatures/")).length === 2,
      "numbered and sealed for version 1",
    );
    // Another trainer with the same key publishes version 1 meanwhile (the memory store enforces
    // If-None-Match, as S3 and MinIO do).
    const other = await store.publishVersion("r", {
      createdAt: "2026-01-01T00:00:00.000Z",
      base: { fingerprint: null },
      probe: null,
      training: null,
      publisher: { service: "trainer", instance: "other" },
      adapter: { files: store.adapterFiles(files.config, files.weights) },
    });
    assert.equal(other.manifest.version, 1);
    objects.release();
    const r = await publishing;
    assert.ok(r.ok);
    assert.equal(r.value.version, 2);
    const head = await store.readHead("r");
    assert.equal(head?.ok === true ? head.value.version : null, 2);
    assert.equal(await ledger.newestVersion("r"), 2);
  });

  it("refuses weights in shared memory with a NaN (scanned on a worker) and writes nothing, not even a ledger", async () => {
    const { objects, ledger, publisher } = await setup();
    const bad = adapter(Number.NaN, true);
    assert.ok(bad.weights.buffer instanceof SharedArrayBuffer);
    const r = await publisher.publish("new-run", bad.config, bad.weights);
    assert.equal(r.ok, false);
    assert.equal(r.ok ? null : r.error.code, "invalid_adapter");
    assert.match(r.ok ? "" : r.error.message, /lora_A\.weight`: contains NaN \(element 0\)/);
    assert.deepEqual(objects.events, [], "nothing is written to the store");
    assert.deepEqual(await ledger.runs(), [], "no ledger for a run refused files");

    const good = adapter(1, true);
    const ok = await publisher.publish("new-run", good.config, good.weights);
    assert.ok(ok.ok);
    assert.equal(ok.value.version, 1);
    assert.deepEqual(await ledger.runs(), ["new-run"]);
  });

  it("after a rollback, and a rollback record altered in the store, signs the next head counting it and puts the record back", async () => {
    const { objects, store, publisher } = await setup();
    for (const seed of [1, 2]) {
      const files = adapter(seed);
      assert.ok((await publisher.publish("r", files.config, files.weights)).ok);
    }
    assert.ok((await publisher.rollback("r", 1)).ok);
    const [key] = await objects.list("runs/r/rollbacks/");
    assert.ok(key !== undefined);
    const record = await objects.get(key);
    await objects.put(key, new TextEncoder().encode("{not json"));
    const files = adapter(3);
    const r = await publisher.publish("r", files.config, files.weights);
    assert.ok(r.ok);
    assert.equal(r.value.version, 3);
    assert.deepEqual(await objects.get(key), record, "the repair before the numbering put the record back");
    const head = await store.readHead("r");
    assert.deepEqual(head?.ok === true ? [head.value.version, head.value.rollbacks] : null, [3, 1]);
    assert.deepEqual(
      (await store.listRollbacks("r")).map((x) => [x.atVersion, x.to]),
      [[2, 1]],
      "the store's reader reads the record put back, not a refusal cached while it was altered",
    );
  });
});
