/**
 * Multipart uploads abandoned when S3 dies are aborted (issue 15, item 9), on real processes: the
 * embedded S3 server and a trainer. S3 is SIGKILLed in the middle of a multipart publish, so the
 * publish's own AbortMultipartUpload fails too and the parts stay on S3's disk (577 MB were seen
 * left for good); once S3 is back on the same dir and port, the trainer's retry aborts the upload:
 * ListMultipartUploads is empty and s3rver's dir holds no part file. An upload a dead trainer left
 * under the prefix is aborted by the next trainer's start-up sweep, and one under another prefix is
 * left alone (one trainer writes a prefix). Each abort is logged and counted in `/metrics`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { S3_LOCAL_CREDENTIALS } from "@loracast/dev-support/stack";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { LLAMA_7B_DIMS, randomAdapter, writeBaseConfig } from "../helpers/adapters.ts";
import { BUCKET, startS3 } from "../helpers/s3.ts";
import { type Stack, startStack } from "../helpers/stack.ts";

const MiB = 1024 * 1024;
const port = (s: Service) => Number(new URL(s.url).port);

describe("abandoned multipart uploads are aborted", () => {
  let stack: Stack;
  let client: S3Client;
  /** s3rver keeps upload `<id>` in `<bucket>/._S3rver_uploads/<id>/`: `key`, `metadata`, one file per part. */
  const uploadsDir = (): string => join(stack.s3.dir, BUCKET, "._S3rver_uploads");
  const partFiles = (): string[] =>
    existsSync(uploadsDir())
      ? readdirSync(uploadsDir()).flatMap((id) =>
          readdirSync(join(uploadsDir(), id)).filter((f) => /^\d+$/.test(f)),
        )
      : [];
  const listUploads = async (prefix = "") =>
    (await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }))).Uploads ?? [];
  const aborted = async (): Promise<number> =>
    Number(
      /^loracast_store_multipart_aborted_total (\d+)$/m.exec(
        await (await fetch(`${stack.trainer.url}/metrics`)).text(),
      )?.[1],
    );
  const newClient = () =>
    new S3Client({
      endpoint: stack.s3.url,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: S3_LOCAL_CREDENTIALS,
    });

  before(async () => {
    // Parts of 5 MiB from 1 MiB up: the adapter below (about 67 MB) goes up in 13 parts.
    stack = await startStack({ trainerEnv: { S3_MULTIPART_THRESHOLD_MB: "1", S3_PART_SIZE_MB: "5" } });
    client = newClient();
  });
  after(async () => {
    client?.destroy();
    await stack?.stop();
  });

  it("aborts the upload S3 died under once S3 is back: no upload listed, no part file left", async () => {
    const base = writeBaseConfig(join(stack.dir, "base7b"), LLAMA_7B_DIMS);
    const files = randomAdapter(base, 1, 32, ["q_proj", "v_proj"], 0.01);
    assert.ok(files.weights.byteLength > 50 * MiB);

    const publishing = stack.publish("mp", files);
    // SIGKILL S3 as soon as the first part of the upload is on its disk.
    await eventually(
      "a part of the multipart upload on S3's disk",
      async () => partFiles().length > 0 || undefined,
      60_000,
      2,
    );
    await stack.s3.kill();
    const res = await publishing;
    assert.equal(res.status, 503, await res.clone().text());
    assert.ok(partFiles().length > 0, "the failed abort left the parts on S3's disk");

    const s3 = await startS3(stack.s3.dir, port(stack.s3));
    Object.assign(stack.s3, { proc: s3.proc, stop: s3.stop, kill: s3.kill });
    await eventually(
      "no multipart upload left",
      async () => ((await listUploads()).length === 0 && partFiles().length === 0) || undefined,
      60_000,
      200,
    );
    assert.ok(
      stack.trainer.logs.some((l) => l.msg === "multipart upload abort failed; retrying"),
      "the failed abort is logged",
    );
    const line = stack.trainer.logs.find((l) => l.msg === "abandoned multipart upload aborted");
    assert.equal(line?.why, "retry");
    assert.match(String(line?.key), /^loracast\/blobs\/sha256\/[0-9a-f]{64}$/);
    assert.equal(await aborted(), 1, "counted in /metrics");
  });

  it("aborts at start the uploads a dead trainer left under its prefix, and only those", async () => {
    const leave = async (Key: string) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }));
      await client.send(
        new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: 1, Body: new Uint8Array(MiB) }),
      );
      return UploadId;
    };
    await stack.trainer.kill();
    const ours = await leave("loracast/blobs/sha256/left-by-a-dead-trainer");
    const theirs = await leave("other-prefix/blobs/sha256/someone-elses");
    assert.equal((await listUploads()).length, 2);

    await stack.startTrainer();
    const line = await stack.trainer.waitForLog((l) => l.msg === "abandoned multipart uploads swept", 30_000);
    assert.equal(line.count, 1);
    const swept = stack.trainer.logs.find((l) => l.msg === "abandoned multipart upload aborted");
    assert.equal(swept?.uploadId, ours);
    assert.equal(swept?.why, "sweep");
    assert.deepEqual(
      (await listUploads()).map((u) => u.UploadId),
      [theirs],
      "another prefix's upload is left alone",
    );
    assert.equal(await aborted(), 1, "counted by the new trainer");
  });
});
