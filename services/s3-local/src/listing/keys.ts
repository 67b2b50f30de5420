import type { Dirent } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { compareKeys } from "./page.ts";

/** s3rver keeps object `a/b` as the file `a/b._S3rver_object` under the bucket's directory. */
const OBJECT_SUFFIX = "._S3rver_object";
/** s3rver's own entries (multipart uploads, bucket configs) carry this marker; none is a key. */
const INTERNAL = "._S3rver_";

/** How s3rver maps keys to file paths (it escapes characters Windows forbids; identity elsewhere). */
export interface KeyPathCodec {
  encodeKeyPath(key: string): string;
  decodeKeyPath(path: string): string;
}

/**
 * Every key under `prefix` in the bucket stored at `bucketDir`, sorted as S3 sorts them. Only
 * directories whose path can hold such keys are read; every one of those is read to the bottom
 * (s3rver's own walk stopped at directories below a would-be common prefix before it had seen an
 * object in them, so `runs/` listed no run whose objects all sit deeper, as every run's do).
 */
export async function keysUnder(bucketDir: string, prefix: string, codec: KeyPathCodec): Promise<string[]> {
  const keys: string[] = [];
  const walk = async (dir: string, keyDir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      // A directory removed while we walk holds no keys any more.
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    for (const entry of entries) {
      const name = codec.decodeKeyPath(entry.name);
      if (entry.isDirectory()) {
        if (name.includes(INTERNAL)) continue;
        const sub = `${keyDir}${name}/`;
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) await walk(join(dir, entry.name), sub);
      } else if (name.endsWith(OBJECT_SUFFIX)) {
        const key = keyDir + name.slice(0, -OBJECT_SUFFIX.length);
        if (key.startsWith(prefix)) keys.push(key);
      }
    }
  };
  await walk(bucketDir, "");
  return keys.sort(compareKeys);
}
