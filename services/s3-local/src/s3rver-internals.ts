/**
 * The parts of s3rver's internals (it ships no types and exports only its server class) that the
 * embedded server's own handlers reuse: its error type (answered as S3's XML error), its dummy
 * account, its router and controllers, and its key-to-path codec.
 */
import { createRequire } from "node:module";

/** s3rver's S3 error: `code` becomes the XML error's Code and HTTP status, `detail` extra elements. */
export type S3ErrorClass = new (code: string, message: string, detail?: Record<string, unknown>) => Error;

/** Requires a module of s3rver's `lib/` folder by its relative path. */
export const requireFromS3rver = createRequire(createRequire(import.meta.url).resolve("s3rver"));

/** s3rver's `S3Error` class (`lib/models/error.js`): thrown by a handler, answered as S3's XML error. */
export const S3Error = requireFromS3rver("./models/error") as S3ErrorClass;

/** The one account s3rver answers as (owner and initiator of everything). */
export const { DUMMY_ACCOUNT } = requireFromS3rver("./models/account") as {
  DUMMY_ACCOUNT: { id: string; displayName: string };
};
