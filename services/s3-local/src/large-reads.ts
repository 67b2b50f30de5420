import { createReadStream, ReadStream } from "node:fs";
import type S3rver from "s3rver";

/** Bytes per disk read when serving an object. */
const READ_BYTES = 1024 * 1024;

/**
 * s3rver serves an object through `fs.createReadStream` with its default 64 KiB reads, so one
 * 250 MB GET costs about 4,000 reads and socket writes. With eight generators pulling at once on a
 * 2-core machine, that per-chunk work made the server the bottleneck of every handoff. Each GET's
 * stream is replaced by one over the same file and range that reads 1 MiB at a time.
 */
export function readInLargeChunks(server: S3rver): void {
  const store = server.store;
  const getObject = store.getObject.bind(store);
  store.getObject = async (bucket, key, options) => {
    const object = await getObject(bucket, key, options);
    const content = object?.content;
    if (object && content instanceof ReadStream) {
      object.content = createReadStream(content.path, { ...object.range, highWaterMark: READ_BYTES });
      content.destroy();
    }
    return object;
  };
}
