// s3rver ships no types; this declares the part of its API the launcher uses.
declare module "s3rver" {
  import type { AddressInfo } from "node:net";

  interface S3rverOptions {
    address?: string;
    port?: number;
    directory?: string;
    silent?: boolean;
    configureBuckets?: { name: string; configs: (string | Buffer)[] }[];
  }
  /** What the filesystem store returns for a GET: the body stream, and the byte range when one was asked for. */
  interface StoredObject {
    content: import("node:stream").Readable | null;
    range?: { start: number; end: number };
  }
  interface ObjectStore {
    getObject(
      bucket: string,
      key: string,
      options?: { start?: number; end?: number },
    ): Promise<StoredObject | null>;
  }
  export default class S3rver {
    constructor(options: S3rverOptions);
    readonly store: ObjectStore;
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
}

// The internals the embedded server reuses (src/s3rver-internals.ts and its handlers): untyped
// CommonJS modules, narrowed where they are imported.
declare module "s3rver/lib/*" {
  const exports: unknown;
  export default exports;
}
