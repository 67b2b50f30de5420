/** Options of `ObjectStore.put`. */
export interface PutOptions {
  /** Refuse to overwrite (see `ObjectStore.put`). */
  ifNoneMatch?: boolean;
  contentType?: string;
  /**
   * The body's sha256, lowercase hex, when the caller has it already: S3 signs the request with it
   * (`x-amz-content-sha256`) instead of hashing the body once more. Stores that sign nothing have
   * no use for it.
   */
  sha256?: string;
}

/** The few object-storage operations loracast needs, so the adapter store can run on S3 or in memory. */
export interface ObjectStore {
  /**
   * Writes an object. With `ifNoneMatch`, returns "exists" instead of overwriting, where the server
   * honours conditional writes (see `conditionalWrites`).
   */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<"written" | "exists">;
  /**
   * Reads an object into `into` when its size is exactly `into.byteLength`, calling `onData` with
   * each region of `into` as it is filled. Returns the object's size (when it differs from the
   * buffer's, the buffer's content is unspecified), or null if there is no such object.
   */
  readInto(
    key: string,
    into: Uint8Array,
    onData: (region: Uint8Array) => void,
    signal?: AbortSignal,
  ): Promise<number | null>;
  get(key: string): Promise<Uint8Array | null>;
  head(key: string): Promise<{ bytes: number } | null>;
  /** Every key under `prefix`, ascending, optionally only those after `startAfter`. */
  list(prefix: string, startAfter?: string): Promise<string[]>;
  /**
   * Like `list`, with each object's entity tag (the S3 ETag, or size and last-modified where a
   * server gives none): what changes whenever the object's bytes do, so a reader can cache what
   * it verified per key and tag.
   */
  listEntries(prefix: string, startAfter?: string): Promise<{ key: string; etag: string }[]>;
  /** The distinct next path segments under `prefix` (a delimiter listing). */
  listSegments(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /** Whether `put(..., {ifNoneMatch: true})` is enforced by the server; set by `detectConditionalWrites`. */
  conditionalWrites: boolean;
  /** Bytes moved by this client so far. */
  readonly traffic: { uploaded: number; downloaded: number };
}

/**
 * `rejected`: a 4xx other than 429, the request itself is wrong (missing bucket, bad credentials,
 * access denied) and retrying will not help; `unavailable`: anything else (refused, no answer, 5xx,
 * throttling).
 */
export type StoreErrorCode = "unavailable" | "rejected";

/** The store could not be reached, or refused a request in a way retrying will not fix. */
export class StoreError extends Error {
  override readonly name = "StoreError";
  /**
   * Why, in the server's or the network's words where known: the S3 error code (`NoSuchBucket`,
   * `InvalidAccessKeyId`, `AccessDenied`, …) or the socket error code (`ECONNREFUSED`, `ENOTFOUND`, …).
   */
  readonly reason: string | undefined;
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown; reason?: string },
  ) {
    super(message, options);
    this.reason = options?.reason;
  }
}

/**
 * Finds out whether the server enforces If-None-Match: * on PUT, by writing a probe key twice.
 * MinIO and AWS S3 do; s3rver accepts the second write.
 */
export async function detectConditionalWrites(store: ObjectStore, probeKey: string): Promise<boolean> {
  const body = new TextEncoder().encode("probe");
  await store.delete(probeKey);
  await store.put(probeKey, body, { ifNoneMatch: true });
  const second = await store.put(probeKey, body, { ifNoneMatch: true });
  await store.delete(probeKey);
  store.conditionalWrites = second === "exists";
  return store.conditionalWrites;
}
