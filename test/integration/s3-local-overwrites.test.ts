/**
 * Overwriting an object on the embedded S3 server while it is being read: a reader must see one
 * whole version, old or new, with that version's metadata (S3's PUTs are atomic per object). The
 * demo run's generators once refused the run's head with "it has no signature": s3rver truncated
 * the object file and wrote the new body in place, so a GET in between read an empty or partial
 * body, whose sha256 names no signature envelope.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import type { Service } from "@loracast/dev-support/supervisor";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import { AdapterStore, type RefusedRecord, S3ObjectStore } from "@loracast/shared/store";
import { BUCKET, s3Settings, startS3 } from "../helpers/s3.ts";

/** Each race runs until this many overwrites, or for at most `RACE_MS` on a loaded machine. */
const RACE_WRITES = 80;
const RACE_MS = 5000;
const RUN = "torn";

const md5 = (bytes: Uint8Array): string => createHash("md5").update(bytes).digest("hex");

describe("embedded S3 server: overwrites while reading", () => {
  let s3: Service;
  let objects: S3ObjectStore;

  before(async () => {
    s3 = await startS3();
    objects = new S3ObjectStore(s3Settings(s3.url, "overwrites"));
  });
  after(async () => {
    objects.client.destroy();
    await s3.stop();
  });

  it("a reader of a signed head being rewritten never refuses it", async (t) => {
    const signer = Signer.generate();
    const writer = new AdapterStore(objects, { signer });
    const refused: RefusedRecord[] = [];
    const failed: string[] = [];
    const reader = new AdapterStore(objects, {
      trusted: new TrustedKeys([signer.publicKey]),
      onRefused: (r) => refused.push(r),
    });
    const head = (i: number) => ({
      schema: "loracast.head/v1" as const,
      run: RUN,
      version: i,
      rollbacks: 0,
      issuedAt: new Date(1_700_000_000_000 + i).toISOString(),
      expiresAt: new Date(1_800_000_000_000 + i).toISOString(),
    });
    await writer.writeHead(head(1));
    const until = Date.now() + RACE_MS;
    let writes = 1;
    let reads = 0;
    let racing = true;
    await Promise.all([
      (async () => {
        try {
          while (writes < RACE_WRITES && Date.now() < until) await writer.writeHead(head(++writes));
        } finally {
          racing = false;
        }
      })(),
      ...[0, 1].map(async () => {
        // Last writer wins, and a reader never goes back: across one reader's sequential reads
        // the version only grows.
        let seen = 0;
        while (racing) {
          let read: Awaited<ReturnType<typeof reader.readHead>>;
          try {
            read = await reader.readHead(RUN);
          } catch (e) {
            failed.push((e as Error).message);
            continue;
          }
          reads++;
          assert.ok(read !== null, "the head exists throughout");
          if (!read.ok) continue;
          const version = read.value.version ?? 0;
          assert.ok(version >= seen, `read v${version} after v${seen}`);
          seen = version;
        }
      }),
    ]);
    t.diagnostic(`${writes} head writes, ${reads} reads`);
    assert.deepEqual(
      [...refused.map((r) => r.reason), ...failed],
      [],
      `${refused.length} of ${reads} reads refused and ${failed.length} failed during ${writes} overwrites`,
    );
    assert.ok(writes > 10 && reads > 10, `the race ran (${writes} writes, ${reads} reads)`);
    const last = await reader.readHead(RUN);
    assert.equal(last?.ok && last.value.version, writes, "the last write is what stays");
  });

  it("every GET during overwrites and deletes returns one whole version with its own entity tag", async (t) => {
    const Key = "raw/sizes";
    // Versions of very different sizes (and a content type each), so a body paired with another
    // version's length, entity tag or metadata shows.
    const version = (i: number) => Buffer.alloc(1 + ((i * 7919) % 300_000), `v${i};`);
    const put = (i: number) =>
      objects.client.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key,
          Body: version(i),
          ContentType: `application/x-v${i}`,
          Metadata: { version: String(i) },
        }),
      );
    await put(0);
    const until = Date.now() + RACE_MS;
    let writes = 0;
    let reads = 0;
    let missing = 0;
    let racing = true;
    await Promise.all([
      (async () => {
        try {
          while (writes < RACE_WRITES && Date.now() < until) {
            writes++;
            // Every tenth write is a delete: a reader then finds nothing, never part of an object.
            if (writes % 10 === 0)
              await objects.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key }));
            else await put(writes);
          }
        } finally {
          racing = false;
        }
      })(),
      ...[0, 1].map(async () => {
        while (racing) {
          let got: GetObjectCommandOutput;
          try {
            got = await objects.client.send(new GetObjectCommand({ Bucket: BUCKET, Key }));
          } catch (e) {
            if ((e as { name?: string }).name !== "NoSuchKey") throw e;
            missing++;
            continue;
          }
          const body = await (
            got.Body as { transformToByteArray(): Promise<Uint8Array> }
          ).transformToByteArray();
          reads++;
          const i = Number(got.Metadata?.version);
          assert.ok(Number.isInteger(i), `metadata names a version: ${JSON.stringify(got.Metadata)}`);
          assert.equal(got.ContentType, `application/x-v${i}`);
          assert.equal(got.ContentLength, body.byteLength);
          assert.equal(got.ETag, JSON.stringify(md5(body)));
          assert.ok(Buffer.from(body).equals(version(i)), `the body is version ${i}'s, whole`);
        }
      }),
    ]);
    t.diagnostic(
      `${writes} writes (a tenth of them deletes), ${reads} whole reads, ${missing} found deleted`,
    );
    assert.ok(
      writes > 10 && reads > 10,
      `the race ran (${writes} writes, ${reads} reads, ${missing} misses)`,
    );
  });
});
