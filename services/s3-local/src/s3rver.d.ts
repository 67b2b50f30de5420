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
  /**
   * An object's metadata as the store answers it: the stored headers (`content-type`,
   * `x-amz-meta-*`, ...) plus `etag` (the quoted hex MD5), `last-modified` (an HTTP date) and
   * `content-length` (bytes).
   */
  export type ObjectMetadata = Record<string, string | number>;
  /**
   * s3rver's object model (`lib/models/object.js`): for a PUT, the request's body (a stream or
   * a buffer) and headers; for a GET, the body stream (null when the range is unsatisfiable) and
   * the byte range when one was asked for.
   */
  export interface StoredObject {
    bucket: string;
    key: string;
    content: import("node:stream").Readable | Buffer | null;
    metadata: ObjectMetadata;
    range?: { start: number; end: number };
  }
  /** The filesystem store's methods (`lib/stores/filesystem.js`) the embedded server replaces or calls. */
  export interface ObjectStore {
    /** The directory that holds one directory per bucket. */
    readonly rootDirectory: string;
    /** `<root>/<bucket>`. */
    getBucketPath(bucket: string): string;
    /** Where an object's files live: `<root>/<bucket>/<key>._S3rver_<resource>`. */
    getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    /** Rejects with an ENOENT error when there is no such object. */
    getMetadata(bucket: string, key: string): Promise<ObjectMetadata>;
    getObject(
      bucket: string,
      key: string,
      options?: { start?: number; end?: number },
    ): Promise<StoredObject | null>;
    putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
    copyObject(
      srcBucket: string,
      srcKey: string,
      destBucket: string,
      destKey: string,
      replacementMetadata?: ObjectMetadata,
    ): Promise<ObjectMetadata>;
    deleteObject(bucket: string, key: string): Promise<void>;
  }
  /** The part of Koa's request context (s3rver is a Koa app) that our middleware reads and writes. */
  interface KoaContext {
    readonly method: string;
    /** The request's pathname, without the query. */
    readonly path: string;
    /** The query string, without `?`. */
    readonly querystring: string;
    /** A request header, or "" when absent. */
    get(field: string): string;
    type: string;
    body: unknown;
  }
  type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
  export default class S3rver {
    constructor(options: S3rverOptions);
    readonly store: ObjectStore;
    /** Koa's middleware list, composed when the server starts listening (`run`). */
    readonly middleware: KoaMiddleware[];
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
