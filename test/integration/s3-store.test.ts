import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { Service } from "@loracast/dev-support/supervisor";
import {
  AdapterStore,
  detectConditionalWrites,
  S3ObjectStore,
  StoreError,
  sha256Hex,
} from "@loracast/shared/store";
import { BUCKET, s3Settings, startS3 } from "../helpers/s3.ts";

describe("S3 object store against the embedded server", () => {
  let s3: Service;
  /** Reads blobs through presigned GETs on a raw socket (the default for an http endpoint). */
  let objects: S3ObjectStore;
  /** Reads blobs through the SDK's body stream, as over https. */
  let viaSdk: S3ObjectStore;

  before(async () => {
    s3 = await startS3();
    const settings = {
      maxAttempts: 2,
      multipartThresholdBytes: 6 * 1024 * 1024,
      partSizeBytes: 5 * 1024 * 1024,
    };
    objects = new S3ObjectStore(s3Settings(s3.url, "it", settings));
    viaSdk = new S3ObjectStore(s3Settings(s3.url, "it", { ...settings, directReads: false }));
  });
  after(async () => {
    objects.client.destroy();
    viaSdk.client.destroy();
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

  for (const [path, client] of [
    ["a presigned socket read", () => objects],
    ["the SDK's body stream", () => viaSdk],
  ] as const) {
    it(`reads blobs through ${path}: exact size, wrong size, missing, tampered`, async () => {
      const store = new AdapterStore(client());
      const bytes = randomBytes(3 * 1024 * 1024 + 11);
      const { file } = await store.putBlob(bytes);
      const before = client().traffic.downloaded;
      const back = await store.downloadBlob({ name: "w", ...file });
      assert.ok(back.ok && Buffer.from(back.value).equals(bytes));
      assert.equal(client().traffic.downloaded - before, bytes.byteLength);

      const short = await store.downloadBlob({ name: "w", ...file, bytes: file.bytes + 5 });
      assert.match(
        short.ok ? "" : short.error.reason,
        new RegExp(`has ${file.bytes} bytes, ${file.bytes + 5} announced`),
      );
      const long = await store.downloadBlob({ name: "w", ...file, bytes: 1000 });
      assert.match(long.ok ? "" : long.error.reason, /larger than the 1000 bytes announced/);
      const missing = await store.downloadBlob({ name: "w", ...file, blob: "blobs/sha256/nothing-here" });
      assert.match(missing.ok ? "" : missing.error.reason, /is missing from the store/);

      const other = randomBytes(bytes.byteLength);
      await client().put(file.blob, other);
      const tampered = await store.downloadBlob({ name: "w", ...file });
      assert.match(
        tampered.ok ? "" : tampered.error.reason,
        /sha256 [0-9a-f]{64} does not match the manifest's/,
      );
    });
  }

  it("fails a presigned read the server refuses as a rejected request naming the status", async () => {
    // s3rver does not check v4 signatures, but it does check that the access key exists.
    const wrong = new S3ObjectStore(s3Settings(s3.url, "it", { accessKeyId: "NOT-A-KEY" }));
    await objects.put("signed/x", new Uint8Array([1, 2, 3]));
    await assert.rejects(
      wrong.readInto("signed/x", new Uint8Array(3), () => undefined),
      (e: unknown) => e instanceof StoreError && e.code === "rejected" && /HTTP 403/.test(e.message),
    );
    wrong.client.destroy();
  });

  it("serves whole objects and byte ranges from its 1 MiB disk reads", async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 5);
    await objects.put("ranged/x", bytes);
    const get = async (range?: string) => {
      const r = await objects.client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "it/ranged/x", ...(range ? { Range: range } : {}) }),
      );
      return Buffer.from((await r.Body?.transformToByteArray()) ?? []);
    };
    assert.ok((await get()).equals(bytes));
    assert.ok((await get("bytes=1048570-2097160")).equals(bytes.subarray(1048570, 2097161)));
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
