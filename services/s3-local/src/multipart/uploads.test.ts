import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Upload, uploadsPage } from "./uploads.ts";

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
const all: Upload[] = [
  { key: "p/b", uploadId: "u1", initiated: at(1) },
  { key: "p/a", uploadId: "u3", initiated: at(3) },
  { key: "p/a", uploadId: "u2", initiated: at(2) },
  { key: "q/x", uploadId: "u4", initiated: at(4) },
];
const ids = (us: Upload[]) => us.map((u) => u.uploadId);
const request = { prefix: "", keyMarker: "", uploadIdMarker: "", maxUploads: 1000 };

describe("ListMultipartUploads pages", () => {
  it("orders by key, then by initiation, and filters by prefix", () => {
    assert.deepEqual(ids(uploadsPage(all, request).uploads), ["u2", "u3", "u1", "u4"]);
    assert.deepEqual(ids(uploadsPage(all, { ...request, prefix: "p/" }).uploads), ["u2", "u3", "u1"]);
  });

  it("pages with key-marker and upload-id-marker, as S3 does", () => {
    const first = uploadsPage(all, { ...request, maxUploads: 1 });
    assert.deepEqual(
      [ids(first.uploads), first.isTruncated, first.next],
      [["u2"], true, { keyMarker: "p/a", uploadIdMarker: "u2" }],
    );
    const second = uploadsPage(all, { ...request, maxUploads: 2, ...first.next });
    assert.deepEqual(ids(second.uploads), ["u3", "u1"]);
    const last = uploadsPage(all, { ...request, maxUploads: 2, ...second.next });
    assert.deepEqual([ids(last.uploads), last.isTruncated, last.next], [["u4"], false, undefined]);
    // key-marker alone skips every upload of that key.
    assert.deepEqual(ids(uploadsPage(all, { ...request, keyMarker: "p/a" }).uploads), ["u1", "u4"]);
  });
});
