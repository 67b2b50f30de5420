import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AbortMultipartUploadCommand,
  ListMultipartUploadsCommand,
  type S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { AbandonedUploads, type MultipartUpload } from "./abandoned-uploads.ts";

/** A stand-in for the SDK client: `send` goes to `handle`. */
const fakeClient = (handle: (command: unknown) => unknown): S3Client =>
  ({ send: async (command: unknown) => handle(command) }) as unknown as S3Client;

const notFound = () =>
  new S3ServiceException({ name: "NoSuchUpload", $fault: "client", $metadata: { httpStatusCode: 404 } });

describe("abandoned multipart uploads", () => {
  it("retries a failed abort until S3 answers, then counts and reports it", async () => {
    let calls = 0;
    const aborted: (MultipartUpload & { why: string })[] = [];
    let failures = 0;
    const uploads = new AbandonedUploads(
      fakeClient((c) => {
        assert.ok(c instanceof AbortMultipartUploadCommand);
        if (++calls < 3) throw new Error("connect ECONNREFUSED");
        return {};
      }),
      "b",
      { onAborted: (u) => aborted.push(u), onAbortFailed: () => failures++ },
    );
    await uploads.abortOrRetry({ key: "p/k", uploadId: "u" });
    assert.equal(uploads.pendingCount, 1);
    const deadline = Date.now() + 10_000;
    while (aborted.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(aborted, [{ key: "p/k", uploadId: "u", why: "retry" }]);
    assert.deepEqual([uploads.aborted, uploads.pendingCount, failures, calls], [1, 0, 1, 3]);
  });

  it("sweeps every page under the prefix, only uploads initiated before the start, 404 as gone", async () => {
    const start = new Date("2026-01-01T00:00:10Z");
    const seen: string[] = [];
    const uploads = new AbandonedUploads(
      fakeClient((c) => {
        if (c instanceof ListMultipartUploadsCommand) {
          assert.equal(c.input.Prefix, "p/");
          return c.input.KeyMarker === undefined
            ? {
                Uploads: [{ Key: "p/a", UploadId: "old", Initiated: new Date("2026-01-01T00:00:01Z") }],
                IsTruncated: true,
                NextKeyMarker: "p/a",
                NextUploadIdMarker: "old",
              }
            : {
                Uploads: [
                  { Key: "p/b", UploadId: "gone", Initiated: new Date("2026-01-01T00:00:02Z") },
                  { Key: "p/c", UploadId: "mine", Initiated: new Date("2026-01-01T00:00:11Z") },
                ],
                IsTruncated: false,
              };
        }
        assert.ok(c instanceof AbortMultipartUploadCommand);
        seen.push(c.input.UploadId as string);
        if (c.input.UploadId === "gone") throw notFound();
        return {};
      }),
      "b",
    );
    assert.equal(await uploads.sweep("p/", start), 2);
    assert.deepEqual(seen, ["old", "gone"]);
    assert.equal(uploads.aborted, 2);
  });
});
