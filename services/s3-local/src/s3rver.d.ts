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
