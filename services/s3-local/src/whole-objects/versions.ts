import { createHash, randomUUID } from "node:crypto";
import {
  createWriteStream,
  mkdirSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  unlinkSync,
} from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ObjectMetadata, ObjectStore } from "s3rver";
import { S3Object } from "../s3rver-internals.ts";

/** The files s3rver keeps per object, by resource suffix: the body, its MD5 (hex) and its headers. */
const RESOURCES = ["object", "object.md5", "metadata.json"] as const;

/**
 * Where a version is written before it is committed: `<bucket>/._S3rver_tmp`. It lies on the same
 * file system as the objects (a rename is atomic only there), and keys never list from it: the
 * listing skips directories named with s3rver's `._S3rver_` marker, as it does its multipart
 * uploads (`<bucket>/._S3rver_uploads`).
 */
function stagingDir(store: ObjectStore, bucket: string): string {
  return store.getResourcePath(bucket, undefined, "tmp");
}

/** The headers stored with an object: S3's standard ones and `x-amz-meta-*` (s3rver's `putMetadata`). */
export function storedHeaders(metadata: ObjectMetadata): ObjectMetadata {
  const out: ObjectMetadata = {};
  for (const [name, value] of Object.entries(metadata))
    if (S3Object.ALLOWED_METADATA.includes(name) || name.startsWith("x-amz-meta-")) out[name] = value;
  return out;
}

/**
 * Writes a new version of `bucket`/`key` and makes it the object in one step: the body (streamed,
 * hashed as it lands), its MD5 and `headers` (as `storedHeaders` keeps them) go to staging files
 * first; only once all three are whole does `commit` move them over the object's files. A reader
 * sees the old version until then and the new one after, never a body being written, and an upload
 * that fails or breaks off leaves the old version as it was (S3's PUT: last writer wins, atomically).
 * s3rver truncates the object's file and writes the new body in place, then its MD5, then its
 * headers, each a step a reader can fall between (and resolves a buffer's write before it lands).
 */
export async function writeVersion(
  store: ObjectStore,
  bucket: string,
  key: string,
  content: Readable | Buffer,
  headers: ObjectMetadata,
): Promise<{ size: number; md5: string }> {
  const staging = stagingDir(store, bucket);
  // Synchronously, so that the body stream has its consumer (and error handler) before any await.
  mkdirSync(staging, { recursive: true });
  const base = join(staging, randomUUID());
  const staged = Object.fromEntries(RESOURCES.map((r) => [r, `${base}.${r}`])) as Record<
    (typeof RESOURCES)[number],
    string
  >;
  try {
    const hash = createHash("md5");
    let size = 0;
    if (Buffer.isBuffer(content)) {
      hash.update(content);
      size = content.byteLength;
      await writeFile(staged.object, content);
    } else {
      const count = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          size += chunk.byteLength;
          done(null, chunk);
        },
      });
      await pipeline(content, count, createWriteStream(staged.object));
    }
    const md5 = hash.digest("hex");
    await writeFile(staged["object.md5"], md5);
    await writeFile(staged["metadata.json"], JSON.stringify(storedHeaders(headers), null, 2));
    commit(store, bucket, key, staged);
    return { size, md5 };
  } catch (e) {
    await Promise.all(RESOURCES.map((r) => rm(staged[r], { force: true })));
    throw e;
  }
}

/**
 * Moves a staged version's three files over the object's, in one synchronous step: no request
 * on this event loop runs in between, and readers take their snapshot in one synchronous step too
 * (./snapshot.ts), so they see all three files of one version. The directory is (re)made in the
 * same step, as a delete of a sibling key removes a directory it leaves empty.
 */
function commit(
  store: ObjectStore,
  bucket: string,
  key: string,
  staged: Record<(typeof RESOURCES)[number], string>,
): void {
  mkdirSync(dirname(store.getResourcePath(bucket, key, "object")), { recursive: true });
  for (const r of RESOURCES) renameSync(staged[r], store.getResourcePath(bucket, key, r));
}

/**
 * Deletes `bucket`/`key` (nothing when absent) in one synchronous step, then removes the
 * directories of its key that it left empty, as s3rver does. s3rver unlinks the three files
 * concurrently, so a reader could find the body without its MD5 (and write one back, for a body
 * then deleted) or without its headers.
 */
export function deleteVersion(store: ObjectStore, bucket: string, key: string): void {
  for (const r of RESOURCES) {
    try {
      unlinkSync(store.getResourcePath(bucket, key, r));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  // The last part of a key is in the file's name, not a directory.
  const parts = key.split("/").slice(0, -1);
  const bucketDir = store.getBucketPath(bucket);
  while (parts.length > 0) {
    const dir = join(bucketDir, ...parts);
    try {
      if (readdirSync(dir).length > 0) break;
      rmdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    parts.pop();
  }
}

/**
 * Removes what a server stopped mid-upload left staged, in every bucket of the store: nothing
 * refers to it. Only before the server takes requests (one server per directory, as s3rver
 * assumes).
 */
export function clearStaging(store: ObjectStore): void {
  for (const entry of readdirSync(store.rootDirectory, { withFileTypes: true }))
    if (entry.isDirectory()) rmSync(stagingDir(store, entry.name), { recursive: true, force: true });
}
