import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { AdapterStore, detectConditionalWrites, S3ObjectStore, sha256Hex } from "@loracast/shared/store";
import type { Service } from "@loracast/shared/supervisor";
import { BUCKET, startS3 } from "../helpers/s3.ts";

describe("S3 object store against the embedded server", () => {
  let s3: Service;
  let objects: S3ObjectStore;

  before(async () => {
    s3 = await startS3();
    objects = new S3ObjectStore({
      endpoint: s3.url,
      region: "us-east-1",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      bucket: BUCKET,
      prefix: "it",
      forcePathStyle: true,
      maxAttempts: 2,
      multipartThresholdBytes: 6 * 1024 * 1024,
      partSizeBytes: 5 * 1024 * 1024,
    });
  });
  after(async () => {
    objects.client.destroy();
    await s3.stop();
  });

  it("detects that s3rver ignores If-None-Match", async () => {
    assert.equal(await detectConditionalWrites(objects, ".probe/conditional"), false);
  });

  it("round-trips a multipart blob byte for byte", async () => {
    const store = new AdapterStore(objects);
    const bytes = randomBytes(13 * 1024 * 1024 + 7);
    const before = objects.traffic.uploaded;
    const { file, uploaded } = await store.putBlob(bytes);
    assert.ok(uploaded);
    assert.equal(objects.traffic.uploaded - before, bytes.byteLength);
    const back = await store.downloadBlob({ name: "x", ...file });
    assert.ok(back.ok);
    assert.equal(sha256Hex(back.value), sha256Hex(bytes));
    assert.equal((await store.putBlob(bytes)).uploaded, false, "an existing address is not uploaded again");
  });

  it("lists past one page of 1000 keys", async () => {
    const body = new Uint8Array([1]);
    const keys = Array.from({ length: 1003 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => objects.put(k, body)));
    }
    const listed = await objects.list("many/");
    assert.equal(listed.length, 1003);
    assert.deepEqual(await objects.list("many/", "many/01000"), ["many/01001", "many/01002"]);
  });
});
