/** One page of ListMultipartUploads, computed from every upload in progress under the prefix. */
import { compareKeys } from "../listing/page.ts";

/** A multipart upload in progress: the key it will create, its id, and when it was initiated. */
export interface Upload {
  key: string;
  uploadId: string;
  initiated: Date;
}

/** What a ListMultipartUploads request asks for, parsed and validated. */
export interface UploadsRequest {
  prefix: string;
  /** Uploads for keys after this one; with `uploadIdMarker`, also this key's uploads after that id. */
  keyMarker: string;
  uploadIdMarker: string;
  /** 1 to 1000. */
  maxUploads: number;
}

/** One page of `ListMultipartUploads`: at most `maxUploads` uploads in S3's order. */
export interface UploadsPage {
  uploads: Upload[];
  isTruncated: boolean;
  /** Where the next page starts, when truncated: the page's last upload. */
  next?: { keyMarker: string; uploadIdMarker: string };
}

/**
 * S3's order and paging (AWS ListMultipartUploads): by key in UTF-8 byte order, a key's uploads by
 * initiation time; `key-marker` alone skips that key's uploads, with `upload-id-marker` only those
 * up to that id.
 */
export function uploadsPage(all: Upload[], r: UploadsRequest): UploadsPage {
  const sorted = all
    .filter((u) => u.key.startsWith(r.prefix))
    .sort((a, b) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  let start = 0;
  if (r.keyMarker !== "") {
    start = sorted.findIndex((u) => compareKeys(u.key, r.keyMarker) > 0);
    if (start < 0) start = sorted.length;
    if (r.uploadIdMarker !== "") {
      const at = sorted.findIndex((u) => u.key === r.keyMarker && u.uploadId === r.uploadIdMarker);
      if (at >= 0) start = at + 1;
    }
  }
  const rest = sorted.slice(start);
  const uploads = rest.slice(0, r.maxUploads);
  const last = uploads[uploads.length - 1];
  const isTruncated = rest.length > uploads.length;
  return isTruncated && last !== undefined
    ? { uploads, isTruncated, next: { keyMarker: last.key, uploadIdMarker: last.uploadId } }
    : { uploads, isTruncated };
}
