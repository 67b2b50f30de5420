import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import pRetry, { AbortError } from "p-retry";
import { type AbandonedUploadHooks, AbandonedUploads } from "./abandoned-uploads.ts";
import { DirectReadError, type DirectResponse, directRead } from "./direct-read.ts";
import type { ObjectStore, PutOptions } from "./object-store.ts";
import { StoreError } from "./object-store.ts";

/**
 * How to reach an S3-compatible bucket (AWS S3, MinIO, s3rver), parsed from `S3_*` by `s3SettingsFromEnv`.
 */
export interface S3Settings {
  /** Custom endpoint (MinIO, s3rver); omit for AWS. */
  endpoint?: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  /** Key prefix under which the whole layout lives, without trailing slash; may be empty. */
  prefix: string;
  forcePathStyle: boolean;
  /** Attempts per request, including the first, with the SDK's backoff between them. */
  maxAttempts: number;
  /** Blobs at least this large go up as multipart uploads. */
  multipartThresholdBytes: number;
  partSizeBytes: number;
  /**
   * Read blobs over a raw socket straight into their buffers (see direct-read.ts) where the
   * endpoint is plain http; otherwise, and always for https, through the SDK's body stream.
   */
  directReads: boolean;
}

const PART_CONCURRENCY = 4;
/** Presigned GETs are used at once; the margin covers clock skew between client and server. */
const PRESIGN_SECONDS = 300;
const IDLE_TIMEOUT_MS = 30_000;

/** ObjectStore on @aws-sdk/client-s3; works with AWS S3, MinIO and s3rver. */
export class S3ObjectStore implements ObjectStore {
  readonly client: S3Client;
  conditionalWrites = false;
  readonly traffic = { uploaded: 0, downloaded: 0 };
  private readonly root: string;
  /** Blob reads bypass the SDK's body stream where the endpoint speaks plain http. */
  private readonly directReads: boolean;
  /** Multipart uploads whose abort failed, retried until S3 is back; and the start-up sweep. */
  readonly abandoned: AbandonedUploads;

  /** `hooks` hear of aborts of abandoned multipart uploads, to log them. */
  constructor(
    private readonly settings: S3Settings,
    hooks: AbandonedUploadHooks = {},
  ) {
    this.root = settings.prefix === "" ? "" : `${settings.prefix.replace(/\/+$/, "")}/`;
    this.directReads = settings.directReads && (settings.endpoint?.startsWith("http:") ?? false);
    const agentOptions = { keepAlive: true, maxSockets: 64 };
    this.client = new S3Client({
      ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
      region: settings.region,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      forcePathStyle: settings.forcePathStyle,
      maxAttempts: settings.maxAttempts,
      // Default flexible checksums corrupt streamed uploads to s3rver and buy nothing here: every
      // blob is content-addressed and verified by sha256 on the way back.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: { httpAgent: new Agent(agentOptions), httpsAgent: new HttpsAgent(agentOptions) },
    });
    this.abandoned = new AbandonedUploads(this.client, settings.bucket, hooks);
  }

  /**
   * Aborts the multipart uploads under this store's prefix that were initiated before `before`
   * (this process's start): those a process that died mid-upload left behind. One writer per
   * prefix is assumed (one trainer). Returns how many were aborted.
   */
  async sweepAbandonedUploads(before: Date): Promise<number> {
    try {
      return await this.abandoned.sweep(this.root, before);
    } catch (e) {
      throw wrap(e, `multipart sweep under ${this.root || "the bucket"}`);
    }
  }

  get describe(): string {
    return `s3://${this.settings.bucket}/${this.root}${this.settings.endpoint ? ` at ${this.settings.endpoint}` : ""}`;
  }

  private k(key: string): string {
    return this.root + key;
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<"written" | "exists"> {
    if (body.byteLength >= this.settings.multipartThresholdBytes) {
      await this.putMultipart(key, body, options.contentType);
      return "written";
    }
    try {
      const command = new PutObjectCommand({
        Bucket: this.settings.bucket,
        Key: this.k(key),
        Body: body,
        ContentLength: body.byteLength,
        ContentType: options.contentType ?? "application/octet-stream",
        ...(options.ifNoneMatch ? { IfNoneMatch: "*" } : {}),
      });
      const { sha256 } = options;
      if (sha256 !== undefined) {
        // SigV4 signs the payload's sha256; a request that carries the header is signed with it
        // (@smithy/signature-v4 getPayloadHash) instead of a second pass over the body.
        command.middlewareStack.add(
          (next) => (args) => {
            const request = args.request as { headers?: Record<string, string> };
            if (request.headers !== undefined) request.headers["x-amz-content-sha256"] = sha256;
            return next(args);
          },
          { step: "build", name: "knownPayloadSha256" },
        );
      }
      await this.client.send(command);
    } catch (e) {
      if (options.ifNoneMatch && statusOf(e) === 412) return "exists";
      throw wrap(e, `PUT ${key}`);
    }
    this.traffic.uploaded += body.byteLength;
    return "written";
  }

  /**
   * Parts go up a few at a time; a failure aborts the upload, so no partial object ever appears.
   * When the abort fails too (S3 down), it is retried in the background (`abandoned`).
   */
  private async putMultipart(key: string, body: Uint8Array, contentType?: string): Promise<void> {
    const Bucket = this.settings.bucket;
    const Key = this.k(key);
    let uploadId: string | undefined;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket,
          Key,
          ContentType: contentType ?? "application/octet-stream",
        }),
      );
      uploadId = created.UploadId;
      if (uploadId === undefined)
        throw new StoreError("rejected", `multipart upload for ${key} returned no UploadId`);
      const id = uploadId;
      const size = this.settings.partSizeBytes;
      const count = Math.ceil(body.byteLength / size);
      const etags: string[] = new Array(count);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) {
          const i = next++;
          const part = body.subarray(i * size, Math.min(body.byteLength, (i + 1) * size));
          const r = await this.client.send(
            new UploadPartCommand({
              Bucket,
              Key,
              UploadId: id,
              PartNumber: i + 1,
              Body: part,
              ContentLength: part.byteLength,
            }),
          );
          etags[i] = r.ETag ?? "";
          this.traffic.uploaded += part.byteLength;
        }
      };
      await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, count) }, worker));
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId: id,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (e) {
      if (uploadId !== undefined) await this.abandoned.abortOrRetry({ key: Key, uploadId });
      throw wrap(e, `multipart PUT ${key}`);
    }
  }

  /**
   * Reads a blob straight into `into` when its size is `into.byteLength`. Over plain http this is a
   * presigned GET on a socket that reads into `into` (see direct-read.ts); https goes through the SDK.
   */
  async readInto(
    key: string,
    into: Uint8Array,
    onData: (region: Uint8Array) => void,
    signal?: AbortSignal,
  ): Promise<number | null> {
    if (this.directReads) {
      const r = await pRetry(() => this.readDirect(key, into, onData, signal), {
        retries: this.settings.maxAttempts - 1,
        minTimeout: 100,
        ...(signal === undefined ? {} : { signal }),
      });
      if (r !== "unframed") return r;
    }
    return this.readViaSdk(key, into, onData, signal);
  }

  /** One presigned GET. Failures before the body are retried (through pRetry); those within it are not. */
  private async readDirect(
    key: string,
    into: Uint8Array,
    onData: (region: Uint8Array) => void,
    signal?: AbortSignal,
  ): Promise<number | null | "unframed"> {
    const url = new URL(
      await getSignedUrl(this.client, this.getCommand(key), { expiresIn: PRESIGN_SECONDS }),
    );
    let r: DirectResponse;
    try {
      r = await directRead(url, into, onData, {
        idleTimeoutMs: IDLE_TIMEOUT_MS,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (e) {
      const delivered = e instanceof DirectReadError ? e.delivered : 0;
      this.traffic.downloaded += delivered;
      const error = new StoreError("unavailable", `object store GET ${key} failed: ${(e as Error).message}`, {
        cause: e,
      });
      // A body that broke off is not fetched again here: the caller's next pass starts over.
      throw delivered === 0 ? error : new AbortError(error);
    }
    if (r.kind === "body") {
      this.traffic.downloaded += into.byteLength;
      return into.byteLength;
    }
    if (r.kind !== "status") return r.kind === "size" ? r.size : "unframed";
    if (r.status === 404) return null;
    const message = `object store GET ${key} failed: HTTP ${r.status} ${r.detail}`;
    // As in wrap(): throttling and server errors are retried, other client errors are not.
    if (r.status >= 400 && r.status < 500 && r.status !== 429) {
      throw new AbortError(new StoreError("rejected", message));
    }
    throw new StoreError("unavailable", message);
  }

  private async readViaSdk(
    key: string,
    into: Uint8Array,
    onData: (region: Uint8Array) => void,
    signal?: AbortSignal,
  ): Promise<number | null> {
    const body = (await this.sendGet(key, signal))?.Body as
      | (AsyncIterable<Uint8Array> & { destroy(): void })
      | undefined;
    if (body === undefined) return null;
    let filled = 0;
    try {
      for await (const chunk of body) {
        if (filled + chunk.byteLength > into.byteLength) {
          body.destroy();
          return filled + chunk.byteLength;
        }
        into.set(chunk, filled);
        onData(into.subarray(filled, filled + chunk.byteLength));
        filled += chunk.byteLength;
        this.traffic.downloaded += chunk.byteLength;
      }
    } catch (e) {
      throw wrap(e, `GET ${key} (body)`);
    }
    return filled;
  }

  async get(key: string): Promise<Uint8Array | null> {
    const body = (await this.sendGet(key))?.Body;
    if (body === undefined) return null;
    try {
      const bytes = await body.transformToByteArray();
      this.traffic.downloaded += bytes.byteLength;
      return bytes;
    } catch (e) {
      throw wrap(e, `GET ${key} (body)`);
    }
  }

  private getCommand(key: string): GetObjectCommand {
    return new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.k(key) });
  }

  /** The GET's response, or null when there is no such object. */
  private async sendGet(key: string, signal?: AbortSignal) {
    try {
      return await this.client.send(
        this.getCommand(key),
        signal === undefined ? {} : { abortSignal: signal },
      );
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw wrap(e, `GET ${key}`);
    }
  }

  async head(key: string): Promise<{ bytes: number } | null> {
    try {
      const r = await this.client.send(
        new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.k(key) }),
      );
      return { bytes: r.ContentLength ?? 0 };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw wrap(e, `HEAD ${key}`);
    }
  }

  async list(prefix: string, startAfter?: string): Promise<string[]> {
    return (await this.listEntries(prefix, startAfter)).map((e) => e.key);
  }

  async listEntries(prefix: string, startAfter?: string): Promise<{ key: string; etag: string }[]> {
    const out: { key: string; etag: string }[] = [];
    let token: string | undefined;
    do {
      const r = await this.listPage(prefix, token, startAfter);
      for (const o of r.Contents ?? []) {
        if (o.Key === undefined) continue;
        const etag = o.ETag ?? `${o.Size}-${o.LastModified?.toISOString()}`;
        out.push({ key: o.Key.slice(this.root.length), etag });
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async listSegments(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.listPage(prefix, token, undefined, "/");
      for (const p of r.CommonPrefixes ?? []) {
        if (p.Prefix !== undefined)
          out.push(p.Prefix.slice(this.root.length + prefix.length).replace(/\/$/, ""));
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort();
  }

  private async listPage(prefix: string, token?: string, startAfter?: string, delimiter?: string) {
    try {
      return await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.settings.bucket,
          Prefix: this.k(prefix),
          ...(token === undefined ? {} : { ContinuationToken: token }),
          ...(startAfter === undefined ? {} : { StartAfter: this.k(startAfter) }),
          ...(delimiter === undefined ? {} : { Delimiter: delimiter }),
        }),
      );
    } catch (e) {
      throw wrap(e, `LIST ${prefix}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.k(key) }));
    } catch (e) {
      if (statusOf(e) !== 404) throw wrap(e, `DELETE ${key}`);
    }
  }
}

function statusOf(e: unknown): number | undefined {
  if (e instanceof S3ServiceException) return e.$metadata.httpStatusCode;
  return undefined;
}

function wrap(e: unknown, what: string): StoreError {
  if (e instanceof StoreError) return e;
  const status = statusOf(e);
  const detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  // 4xx other than throttling means the request itself is wrong; everything else is an outage.
  const code =
    status !== undefined && status >= 400 && status < 500 && status !== 429 ? "rejected" : "unavailable";
  return new StoreError(code, `object store ${what} failed: ${detail}`, { cause: e, reason: reasonOf(e) });
}

/** The S3 error code of a service exception, or the error code of a network failure. */
function reasonOf(e: unknown): string | undefined {
  if (e instanceof S3ServiceException) return e.name;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
