/**
 * The parts of s3rver's internals (it ships no types and exports only its server class) that the
 * embedded server's own handlers reuse: its error type (answered as S3's XML error), its dummy
 * account, its object model, its router and controllers, and its key-to-path codec.
 */
// Static subpath imports, not a require computed at run time: a bundler (test/bench/gpu/prepare.sh)
// can follow them, so the bundled server needs no node_modules.

import type { ObjectMetadata, StoredObject } from "s3rver";
import accountModule from "s3rver/lib/models/account.js";
import errorModule from "s3rver/lib/models/error.js";
import objectModule from "s3rver/lib/models/object.js";

/** s3rver's S3 error: `code` becomes the XML error's Code and HTTP status, `detail` extra elements. */
export type S3ErrorClass = new (code: string, message: string, detail?: Record<string, unknown>) => Error;

/** s3rver's `S3Error` class (`lib/models/error.js`): thrown by a handler, answered as S3's XML error. */
export const S3Error = errorModule as S3ErrorClass;

/** The one account s3rver answers as (owner and initiator of everything). */
export const { DUMMY_ACCOUNT } = accountModule as {
  DUMMY_ACCOUNT: { id: string; displayName: string };
};

/**
 * s3rver's object model (`lib/models/object.js`): keeps the metadata headers S3 stores
 * (`ALLOWED_METADATA`, `x-amz-meta-*`) and the intrinsic ones (`etag`, `last-modified`,
 * `content-length`); throws `InvalidStorageClass` for an unknown `x-amz-storage-class`.
 */
export const S3Object = objectModule as {
  new (bucket: string, key: string, content: StoredObject["content"], metadata: ObjectMetadata): StoredObject;
  /** The standard headers stored with an object, besides `x-amz-meta-*`. */
  readonly ALLOWED_METADATA: readonly string[];
};
