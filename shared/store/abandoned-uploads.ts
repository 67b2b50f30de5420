/**
 * Multipart uploads that a failed publish could not abort (issue 15, item 9). When S3 dies in the
 * middle of a multipart upload, the AbortMultipartUpload that should clean it up fails too, and its
 * parts stay in the bucket, billed and invisible, for good (577 MB were seen). This keeps each such
 * upload and retries its abort with backoff until S3 answers again, and `sweep` aborts, at start,
 * the uploads a previous process left under this store's prefix. One trainer writes a prefix, so
 * every upload there that is older than this process is abandoned. Production buckets should also
 * carry an `AbortIncompleteMultipartUpload` lifecycle rule, for what no trainer comes back to.
 */
import {
  AbortMultipartUploadCommand,
  ListMultipartUploadsCommand,
  type S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import pRetry from "p-retry";

/** One multipart upload: the full object key (prefix included) and S3's upload id. */
export interface MultipartUpload {
  key: string;
  uploadId: string;
}

/** Who hears of aborts (to log them): `why` says whether a retry or the start-up sweep did it. */
export interface AbandonedUploadHooks {
  onAborted?: (upload: MultipartUpload & { why: "retry" | "sweep" }) => void;
  /** A retry that failed; another follows after the backoff. */
  onAbortFailed?: (upload: MultipartUpload & { attempt: number; error: Error }) => void;
}

/** Backoff between abort retries: 0.5 s doubling to at most 10 s, for as long as the process runs. */
const RETRY = { retries: Number.POSITIVE_INFINITY, minTimeout: 500, maxTimeout: 10_000, unref: true };

/**
 * The multipart uploads of one S3 client whose abort failed, retried with backoff until S3
 * answers (`abortOrRetry`), and the start-up `sweep` of uploads an earlier process left under the prefix.
 */
export class AbandonedUploads {
  /** Uploads whose abort failed and is being retried, by upload id. */
  private readonly pending = new Map<string, MultipartUpload>();
  private readonly stopped = new AbortController();
  /** Uploads aborted after a failed abort or by the sweep (`loracast_store_multipart_aborted_total`). */
  aborted = 0;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly hooks: AbandonedUploadHooks = {},
  ) {}

  /** Uploads whose abort is still being retried (`loracast_store_multipart_aborts_pending`). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Aborts an upload once; an upload S3 no longer knows (404) counts as aborted. */
  private async abort(u: MultipartUpload): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.uploadId }),
      );
    } catch (e) {
      if (!(e instanceof S3ServiceException && e.$metadata.httpStatusCode === 404)) throw e;
    }
  }

  /** Aborts `upload` now; when that fails, keeps retrying in the background (see `retry`). */
  async abortOrRetry(upload: MultipartUpload): Promise<void> {
    try {
      await this.abort(upload);
    } catch {
      this.retry(upload);
    }
  }

  /** Retries the abort of `upload` with backoff until it succeeds or `stop` is called. */
  retry(upload: MultipartUpload): void {
    if (this.pending.has(upload.uploadId)) return;
    this.pending.set(upload.uploadId, upload);
    void pRetry(() => this.abort(upload), {
      ...RETRY,
      signal: this.stopped.signal,
      onFailedAttempt: ({ error, attemptNumber }) =>
        this.hooks.onAbortFailed?.({ ...upload, attempt: attemptNumber, error }),
    }).then(
      () => {
        this.pending.delete(upload.uploadId);
        this.aborted++;
        this.hooks.onAborted?.({ ...upload, why: "retry" });
      },
      // Only `stop` ends the retries: the process is going away; the next one's sweep takes over.
      () => this.pending.delete(upload.uploadId),
    );
  }

  /**
   * Aborts every multipart upload under `prefix` (the store's whole layout) initiated before
   * `before` (this process's start), page by page. Returns how many it aborted; S3 errors throw.
   */
  async sweep(prefix: string, before: Date): Promise<number> {
    let count = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
          ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
        }),
      );
      for (const u of page.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined) continue;
        if (u.Initiated !== undefined && u.Initiated >= before) continue;
        const upload = { key: u.Key, uploadId: u.UploadId };
        await this.abort(upload);
        count++;
        this.aborted++;
        this.hooks.onAborted?.({ ...upload, why: "sweep" });
      }
      if (!page.IsTruncated) return count;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** Ends the retries under way (at shutdown). */
  stop(): void {
    this.stopped.abort();
  }
}
