/**
 * Whole objects on the embedded server: a reader sees one version of an object, body and metadata
 * together, however the object is overwritten or deleted meanwhile, as S3 guarantees (each PUT is
 * atomic; last writer wins). s3rver's filesystem store writes an object's body in place (truncated
 * first), then its MD5, then its headers, and reads them back with awaits in between, so a GET
 * racing a PUT of the same key could answer an empty or partial body, or one version's body with
 * another's entity tag or length. The demo's run head, rewritten on every publish, was read that way:
 * its sha256 then named no signature envelope, and generators refused it ("it has no signature").
 *
 * Writes go to staging files and are renamed over the object's files in one synchronous step
 * (./versions.ts); reads open the body and read its metadata in one synchronous step
 * (./snapshot.ts) and then stream from the open descriptor, which a later rename does not touch.
 * The event loop is the lock: both steps are a few small system calls, and neither waits for a
 * client. The store's methods are replaced on the instance, where s3rver's controllers (and its
 * own multipart completion, through `this.putObject`) call them.
 */
import { closeSync, createReadStream } from "node:fs";
import type S3rver from "s3rver";
import type { StoredObject } from "s3rver";
import { S3Object } from "../s3rver-internals.ts";
import { READ_BYTES, takeSnapshot } from "./snapshot.ts";
import { clearStaging, deleteVersion, storedHeaders, writeVersion } from "./versions.ts";

/** An ENOENT error, as s3rver's store throws for a missing object (its callers test `code`). */
function noSuchObject(bucket: string, key: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOENT: no object ${bucket}/${key}`), { code: "ENOENT" });
}

/**
 * Makes `server`'s object reads and writes whole (see above), and clears what an earlier server
 * left staged. Call before `server.run()`. GETs read the disk 1 MiB at a time (`READ_BYTES`):
 * s3rver's 64 KiB reads cost a 250 MB GET about 4,000 reads and socket writes, which made the
 * server the bottleneck of every handoff with eight generators pulling at once on 2 cores.
 */
export function keepObjectsWhole(server: S3rver): void {
  const store = server.store;
  clearStaging(store);

  store.getMetadata = async (bucket, key) => {
    const snapshot = await takeSnapshot(store, bucket, key);
    if (snapshot === null) throw noSuchObject(bucket, key);
    closeSync(snapshot.fd);
    return snapshot.metadata;
  };

  // As s3rver's getObject, range arithmetic included, but on one snapshot.
  store.getObject = async (bucket, key, options) => {
    const snapshot = await takeSnapshot(store, bucket, key);
    if (snapshot === null) return null;
    const lastByte = Math.max(0, Number(snapshot.metadata["content-length"]) - 1);
    const range = {
      start: options?.start || 0,
      end: Math.min(options?.end || Number.POSITIVE_INFINITY, lastByte),
    };
    const ranged = options !== undefined && (options.start !== undefined || Boolean(options.end));
    let content: StoredObject["content"] = null;
    if (range.start < 0 || range.end < range.start) closeSync(snapshot.fd);
    else content = createReadStream(snapshot.path, { fd: snapshot.fd, ...range, highWaterMark: READ_BYTES });
    const object = new S3Object(bucket, key, content, snapshot.metadata);
    if (ranged) object.range = range;
    return object;
  };

  store.putObject = (object) =>
    writeVersion(store, object.bucket, object.key, object.content ?? Buffer.alloc(0), object.metadata);

  // A copy reads one snapshot of the source and writes it as a new version of the destination, with
  // the source's headers or the replacement ones.
  store.copyObject = async (srcBucket, srcKey, destBucket, destKey, replacementMetadata) => {
    const source = await takeSnapshot(store, srcBucket, srcKey);
    if (source === null) throw noSuchObject(srcBucket, srcKey);
    const body = createReadStream(source.path, { fd: source.fd, start: 0, highWaterMark: READ_BYTES });
    try {
      await writeVersion(
        store,
        destBucket,
        destKey,
        body,
        replacementMetadata ?? storedHeaders(source.metadata),
      );
    } finally {
      body.destroy(); // closes the descriptor, also where the write failed before reading it
    }
    return store.getMetadata(destBucket, destKey);
  };

  store.deleteObject = async (bucket, key) => deleteVersion(store, bucket, key);
}
