import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { s3Operation } from "./operation.ts";

const op = (method: string, url: string, copySource?: string) => {
  const u = new URL(url, "http://127.0.0.1");
  return s3Operation(method, u.pathname, u.searchParams, copySource);
};

describe("s3Operation", () => {
  it("names the object operations the AWS SDK sends (x-id ignored)", () => {
    assert.equal(op("GET", "/b/runs/r/versions/000000000001.json?x-id=GetObject"), "GetObject");
    assert.equal(op("HEAD", "/b/blobs/sha256/ab"), "HeadObject");
    const presigned =
      "/b/blobs/sha256/ab?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature=00&x-id=GetObject";
    assert.equal(op("GET", presigned), "GetObject");
    assert.equal(op("PUT", "/b/k?x-id=PutObject"), "PutObject");
    assert.equal(op("PUT", "/b/k?x-id=CopyObject", "/b/other"), "CopyObject");
    assert.equal(op("DELETE", "/b/k?x-id=DeleteObject"), "DeleteObject");
    assert.equal(op("POST", "/b/k?uploads"), "CreateMultipartUpload");
    assert.equal(op("PUT", "/b/k?partNumber=2&uploadId=u&x-id=UploadPart"), "UploadPart");
    assert.equal(op("POST", "/b/k?uploadId=u"), "CompleteMultipartUpload");
    assert.equal(op("DELETE", "/b/k?uploadId=u&x-id=AbortMultipartUpload"), "AbortMultipartUpload");
  });

  it("tells listings from other bucket requests", () => {
    assert.equal(op("GET", "/b?list-type=2&prefix=runs%2F&delimiter=%2F"), "ListObjectsV2");
    assert.equal(op("GET", "/b/?prefix=runs%2F"), "ListObjects");
    assert.equal(op("GET", "/b?uploads&prefix=x"), "ListMultipartUploads");
    assert.equal(op("HEAD", "/b"), "HeadBucket");
    assert.equal(op("PUT", "/b"), "CreateBucket");
    assert.equal(op("POST", "/b?delete"), "DeleteObjects");
    assert.equal(op("GET", "/?x-id=ListBuckets"), "ListBuckets");
  });

  it("counts sub-resources and unknown methods as Other, whatever x-id claims", () => {
    assert.equal(op("GET", "/b?acl"), "Other");
    assert.equal(op("GET", "/b/k?tagging&x-id=GetObject"), "Other");
    assert.equal(op("GET", "/b/k?uploadId=u&x-id=ListParts"), "Other");
    assert.equal(op("PUT", "/b?cors"), "Other");
    assert.equal(op("PATCH", "/b/k"), "Other");
    assert.equal(op("POST", "/b/k"), "Other");
    assert.equal(op("GET", "/b/k?response-content-type=text%2Fplain"), "GetObject");
  });
});
