import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WEIGHTS_FILE } from "../manifest/index.ts";
import { Signer, TrustedKeys } from "../signing/index.ts";
import {
  AdapterStore,
  type BlobRepair,
  blobKey,
  type ManifestDraft,
  MemoryObjectStore,
  manifestKey,
  sha256Hex,
} from "./index.ts";

const draft = (blob: { blob: string; sha256: string; bytes: number }): ManifestDraft => ({
  createdAt: "2026-01-01T00:00:00.000Z",
  base: { fingerprint: null },
  adapter: { files: [{ name: WEIGHTS_FILE, ...blob }] },
  probe: null,
  training: null,
  publisher: { service: "test", instance: "t" },
});

describe("adapter store", () => {
  it("uploads a blob once and skips it when its address already exists", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const bytes = new Uint8Array([1, 2, 3]);
    const first = await store.putBlob(bytes);
    const second = await store.putBlob(bytes);
    assert.equal(first.uploaded, true);
    assert.equal(second.uploaded, false);
    assert.equal(objects.traffic.uploaded, 3);
    assert.equal(first.file.blob, blobKey(sha256Hex(bytes)));
  });

  it("rewrites a corrupt blob at its address, counts and reports the repair", async () => {
    const objects = new MemoryObjectStore();
    const repairs: BlobRepair[] = [];
    const store = new AdapterStore(objects, { onBlobRepaired: (r) => repairs.push(r) });
    const bytes = new Uint8Array([1, 2, 3]);
    const key = blobKey(sha256Hex(bytes));
    await objects.put(key, new Uint8Array([1, 2, 4]));
    assert.equal((await store.putBlob(bytes)).uploaded, true);
    await objects.put(key, new Uint8Array([1, 2]));
    assert.equal((await store.putBlob(bytes)).uploaded, true);
    assert.deepEqual(await objects.get(key), bytes);
    assert.equal((await store.putBlob(bytes)).uploaded, false, "a sound blob is not a repair");
    assert.equal(store.blobsRepaired, 2);
    assert.deepEqual(repairs, [
      {
        key,
        expectedSha256: sha256Hex(bytes),
        foundSha256: sha256Hex(new Uint8Array([1, 2, 4])),
        expectedBytes: 3,
        foundBytes: 3,
      },
      { key, expectedSha256: sha256Hex(bytes), foundSha256: null, expectedBytes: 3, foundBytes: 2 },
    ]);
  });

  it("numbers versions 1, 2, 3 with parents, and reads them back verified", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const { file } = await store.putBlob(new Uint8Array([9]));
    const v1 = await store.publishVersion("run-a", draft(file));
    const v2 = await store.publishVersion("run-a", draft(file));
    assert.deepEqual([v1.manifest.version, v2.manifest.version, v2.manifest.parent], [1, 2, 1]);
    assert.deepEqual(await store.listVersions("run-a"), [1, 2]);
    assert.deepEqual(await store.listVersions("run-a", 1), [2]);
    const back = await store.readManifest(v2.key, v2.sha256);
    assert.ok(back?.ok);
    const wrong = await store.readManifest(v2.key, v1.sha256);
    assert.match(wrong?.ok === false ? wrong.error.reason : "", /does not match the announced/);
    assert.deepEqual(await store.listRuns(), ["run-a"]);
  });

  it("takes the next free version when a stale hint collides", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const { file } = await store.putBlob(new Uint8Array([9]));
    await store.publishVersion("r", draft(file));
    const v = await store.publishVersion("r", draft(file), 0);
    assert.equal(v.manifest.version, 2);
  });

  it("without conditional writes: overwrites what cannot be served at the next key, skips a verified manifest, signs each", async () => {
    const objects = new MemoryObjectStore();
    objects.conditionalWrites = false;
    const signer = Signer.generate();
    const store = new AdapterStore(objects, { signer, trusted: new TrustedKeys([signer.publicKey]) });
    const { file } = await store.putBlob(new Uint8Array([9]));
    await store.publishVersion("r", draft(file));
    // Junk at version 2's key (unsigned): overwritten by the next publish, which must verify.
    await objects.put(manifestKey("r", 2), new TextEncoder().encode("{}"));
    const v2 = await store.publishVersion("r", draft(file), 1);
    assert.equal(v2.manifest.version, 2);
    assert.ok((await store.readManifest(v2.key, v2.sha256))?.ok, "version 2 verifies, signature included");
    // A stale hint names a version whose manifest verifies: it is another publisher's, so 3 is next.
    const v3 = await store.publishVersion("r", draft(file), 1);
    assert.deepEqual([v3.manifest.version, v3.manifest.parent], [3, 2]);
    assert.ok((await store.readManifest(v3.key, v3.sha256))?.ok);
    assert.deepEqual(await store.listVersions("r"), [1, 2, 3]);
  });

  it("verifies blob size and sha256 while downloading", async () => {
    const objects = new MemoryObjectStore();
    const store = new AdapterStore(objects);
    const { file } = await store.putBlob(new Uint8Array([1, 2, 3, 4]));
    const good = await store.downloadBlob({ name: WEIGHTS_FILE, ...file });
    assert.ok(good.ok);
    const reused = new Uint8Array(4);
    const into = await store.downloadBlob({ name: WEIGHTS_FILE, ...file }, { into: reused });
    assert.ok(
      into.ok && into.value === reused && reused.join() === "1,2,3,4",
      "a buffer of the right size is filled",
    );
    objects.objects.set(file.blob, new Uint8Array([1, 2, 3, 5]));
    const tampered = await store.downloadBlob({ name: WEIGHTS_FILE, ...file });
    assert.match(
      tampered.ok ? "" : tampered.error.reason,
      /adapter_model\.safetensors .*sha256 .* does not match/,
    );
    objects.objects.set(file.blob, new Uint8Array([1, 2, 3, 4, 5]));
    const long = await store.downloadBlob({ name: WEIGHTS_FILE, ...file });
    assert.match(long.ok ? "" : long.error.reason, /larger than the 4 bytes announced/);
  });

  it("derives the current version through rollbacks", async () => {
    const store = new AdapterStore(new MemoryObjectStore());
    const { file } = await store.putBlob(new Uint8Array([9]));
    for (let i = 0; i < 3; i++) await store.publishVersion("r", draft(file));
    await store.writeRollback({
      schema: "loracast.rollback/v1",
      run: "r",
      to: 1,
      atVersion: 3,
      createdAt: "2026-01-01T00:00:00.000Z",
    });
    assert.equal((await store.currentVersion("r")).current, 1);
    await store.publishVersion("r", draft(file));
    assert.equal((await store.currentVersion("r")).current, 4);
  });
});
