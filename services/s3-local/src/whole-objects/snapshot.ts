import { createHash } from "node:crypto";
import { closeSync, createReadStream, fstatSync, openSync, readFileSync } from "node:fs";
import type { ObjectMetadata, ObjectStore } from "s3rver";

/** Bytes per disk read when serving an object (and when hashing one that has no stored MD5). */
export const READ_BYTES = 1024 * 1024;

/**
 * One version of an object as it was at one instant: an open descriptor of its body file (a later
 * rename over the path leaves this file as it is) and the metadata written with that body.
 */
export interface Snapshot {
  /** Open for reading; the caller closes it, or hands it to a stream that does. */
  fd: number;
  /** The body file's path when the snapshot was taken (for messages; read through `fd`). */
  path: string;
  /** What s3rver's `getMetadata` answers: the stored headers plus etag, last-modified, content-length. */
  metadata: ObjectMetadata;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** The MD5 (hex) of the whole file behind `fd`, read by position (the descriptor's offset is untouched). */
async function md5Of(fd: number, path: string): Promise<string> {
  const hash = createHash("md5");
  for await (const chunk of createReadStream(path, {
    fd,
    start: 0,
    autoClose: false,
    highWaterMark: READ_BYTES,
  }))
    hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Opens `bucket`/`key` and reads the metadata that belongs to that body; null when there is no
 * such object. The body, its `.md5` and its `metadata.json` are three files, replaced together
 * by `commitVersion` (./versions.ts) in one synchronous step; they are read here in one
 * synchronous step too, so no commit on this event loop falls in between and the three belong to
 * one version. Reading them with awaits in between, as s3rver does, can pair one version's body
 * with another's length, entity tag or headers.
 *
 * An object without a stored MD5 (written by something else into the directory) gets the MD5 of
 * the body opened here, as s3rver computes one, but it is not written back.
 */
export async function takeSnapshot(
  store: ObjectStore,
  bucket: string,
  key: string,
): Promise<Snapshot | null> {
  const path = store.getResourcePath(bucket, key, "object");
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    const stat = fstatSync(fd);
    const stored = readOptional(store.getResourcePath(bucket, key, "metadata.json"));
    const storedMd5 = readOptional(store.getResourcePath(bucket, key, "object.md5"));
    // Everything below may await: the version is pinned.
    const md5 = storedMd5 ?? (await md5Of(fd, path));
    return {
      fd,
      path,
      metadata: {
        ...(stored === undefined ? {} : (JSON.parse(stored) as ObjectMetadata)),
        etag: JSON.stringify(md5),
        "last-modified": stat.mtime.toUTCString(),
        "content-length": stat.size,
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
