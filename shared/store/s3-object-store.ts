import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  AbortMultipartUploadCommand,
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
import type { ObjectStore } from "./object-store.ts";
import { StoreError } from "./object-store.ts";

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
}

const PART_CONCURRENCY = 4;

/** ObjectStore on @aws-sdk/client-s3; works with AWS S3, MinIO and s3rver. */
export class S3ObjectStore implements ObjectStore {
  readonly client: S3Client;
  conditionalWrites = false;
  readonly traffic = { uploaded: 0, downloaded: 0 };
  private readonly root: string;

  constructor(private readonly settings: S3Settings) {
    this.root = settings.prefix === "" ? "" : `${settings.prefix.replace(/\/+$/, "")}/`;
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
  }

  get describe(): string {
    return `s3://${this.settings.bucket}/${this.root}${this.settings.endpoint ? ` at ${this.settings.endpoint}` : ""}`;
  }

  private k(key: string): string {
    return this.root + key;
  }

  async put(
    key: string,
    body: Uint8Array,
    options: { ifNoneMatch?: boolean; contentType?: string } = {},
  ): Promise<"written" | "exists"> {
    if (body.byteLength >= this.settings.multipartThresholdBytes) {
      await this.putMultipart(key, body, options.contentType);
      return "written";
    }
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.settings.bucket,
          Key: this.k(key),
          Body: body,
          ContentLength: body.byteLength,
          ContentType: options.contentType ?? "application/octet-stream",
          ...(options.ifNoneMatch ? { IfNoneMatch: "*" } : {}),
        }),
      );
    } catch (e) {
      if (options.ifNoneMatch && statusOf(e) === 412) return "exists";
      throw wrap(e, `PUT ${key}`);
    }
    this.traffic.uploaded += body.byteLength;
    return "written";
  }

  /** Parts go up a few at a time; a failure aborts the upload, so no partial object ever appears. */
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
      if (uploadId !== undefined) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId }))
          .catch(() => undefined);
      }
      throw wrap(e, `multipart PUT ${key}`);
    }
  }

  async getStream(key: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array> | null> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.k(key) }),
        signal === undefined ? {} : { abortSignal: signal },
      );
      const body = r.Body as AsyncIterable<Uint8Array> | undefined;
      if (body === undefined) return null;
      const traffic = this.traffic;
      return (async function* () {
        try {
          for await (const chunk of body) {
            traffic.downloaded += chunk.byteLength;
            yield chunk;
          }
        } catch (e) {
          throw wrap(e, `GET ${key} (body)`);
        }
      })();
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw wrap(e, `GET ${key}`);
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    const stream = await this.getStream(key);
    if (stream === null) return null;
    const chunks: Uint8Array[] = [];
    for await (const c of stream) chunks.push(c);
    return Buffer.concat(chunks);
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
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.listPage(prefix, token, startAfter);
      for (const o of r.Contents ?? []) if (o.Key !== undefined) out.push(o.Key.slice(this.root.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort();
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
  return new StoreError(code, `object store ${what} failed: ${detail}`, { cause: e });
}
