/**
 * ListMultipartUploads (`GET /<bucket>?uploads`) and AbortMultipartUpload
 * (`DELETE /<bucket>/<key>?uploadId=`) for the embedded server, which s3rver lacks (it answers
 * NotImplemented and MethodNotAllowed). They read and remove s3rver's own multipart files: an
 * upload `<id>` lives in `<bucket>/._S3rver_uploads/<id>/` as `key`, `metadata` and one file per
 * part. So the trainer can sweep uploads a dead S3 left behind, and tests can see them gone.
 * Delimiters and `encoding-type` are not implemented (NotImplemented), as nothing here uses them.
 */
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import bucketModule from "s3rver/lib/controllers/bucket.js";
import routesModule from "s3rver/lib/routes.js";
import { DUMMY_ACCOUNT, S3Error } from "../s3rver-internals.ts";
import { type Upload, uploadsPage } from "./uploads.ts";

/** The part of s3rver's Koa context these handlers read and write. */
interface Context {
  params: { bucket: string; key?: string; queryMethod?: string };
  query: Record<string, string | string[] | undefined>;
  store: { getResourcePath(bucket: string, key: string | undefined, resource: string): string };
  status: number;
  body: unknown;
}
type Next = () => Promise<void>;
type Handler = (ctx: Context, next: Next) => Promise<void>;

interface Layer {
  path: string;
  methods: string[];
}
interface Router {
  stack: Layer[];
  get(path: string, handler: Handler): void;
  delete(path: string, handler: Handler): void;
}

const router = routesModule as Router;
const bucketController = bucketModule as {
  bucketExists(ctx: Context): Promise<void>;
};

/** S3's limit on uploads per page, whatever `max-uploads` asks for. */
const PAGE_LIMIT = 1000;
/** s3rver's upload ids: 16 random bytes in hex. Anything else names no upload (nor a path). */
const UPLOAD_ID = /^[0-9a-f]{32}$/;

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function noSuchUpload(uploadId: string): Error {
  return new S3Error(
    "NoSuchUpload",
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    { UploadId: uploadId },
  );
}

const uploadsDir = (ctx: Context): string =>
  ctx.store.getResourcePath(ctx.params.bucket, undefined, "uploads");

/** Every upload in progress in the bucket; initiated when its `key` file was written. */
async function uploadsIn(dir: string): Promise<Upload[]> {
  const ids = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return [] as string[];
    throw e;
  });
  const found = await Promise.all(
    ids
      .filter((id) => UPLOAD_ID.test(id))
      .map(async (uploadId) => {
        const file = join(dir, uploadId, "key");
        try {
          const [key, info] = await Promise.all([readFile(file, "utf8"), stat(file)]);
          return { key, uploadId, initiated: info.mtime };
        } catch (e) {
          // Completed or aborted while we looked: S3 would not list it either.
          if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
          throw e;
        }
      }),
  );
  return found.filter((u) => u !== null);
}

function parseMaxUploads(raw: string | undefined): number {
  if (raw === undefined || raw === "") return PAGE_LIMIT;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 2147483647) {
    throw new S3Error("InvalidArgument", "Argument max-uploads must be an integer between 0 and 2147483647", {
      ArgumentName: "max-uploads",
      ArgumentValue: raw,
    });
  }
  return Math.min(PAGE_LIMIT, n);
}

const listUploads: Handler = async (ctx, next) => {
  if (ctx.params.queryMethod !== "uploads") return next();
  await bucketController.bucketExists(ctx);
  const { query } = ctx;
  for (const unsupported of ["delimiter", "encoding-type"]) {
    if (one(query[unsupported])) {
      throw new S3Error("NotImplemented", `${unsupported} is not implemented by the embedded server`);
    }
  }
  const request = {
    prefix: one(query.prefix) ?? "",
    keyMarker: one(query["key-marker"]) ?? "",
    uploadIdMarker: one(query["upload-id-marker"]) ?? "",
    maxUploads: parseMaxUploads(one(query["max-uploads"])),
  };
  const page =
    request.maxUploads === 0
      ? { uploads: [], isTruncated: false, next: undefined }
      : uploadsPage(await uploadsIn(uploadsDir(ctx)), request);
  const account = { ID: DUMMY_ACCOUNT.id, DisplayName: DUMMY_ACCOUNT.displayName };
  ctx.body = {
    ListMultipartUploadsResult: {
      "@": { xmlns: "http://s3.amazonaws.com/doc/2006-03-01/" },
      Bucket: ctx.params.bucket,
      KeyMarker: request.keyMarker,
      UploadIdMarker: request.uploadIdMarker,
      NextKeyMarker: page.next?.keyMarker,
      NextUploadIdMarker: page.next?.uploadIdMarker,
      Prefix: request.prefix,
      MaxUploads: request.maxUploads,
      IsTruncated: page.isTruncated,
      Upload: page.uploads.map((u) => ({
        Key: u.key,
        UploadId: u.uploadId,
        Initiator: account,
        Owner: account,
        StorageClass: "STANDARD",
        Initiated: u.initiated.toISOString(),
      })),
    },
  };
};

const abortUpload: Handler = async (ctx, next) => {
  if (ctx.params.queryMethod !== "uploadId") return next();
  const uploadId = one(ctx.query.uploadId) ?? "";
  if (!UPLOAD_ID.test(uploadId)) throw noSuchUpload(uploadId);
  const dir = join(uploadsDir(ctx), uploadId);
  const key = await readFile(join(dir, "key"), "utf8").catch(() => null);
  // S3 refuses an id given with another key, as it refuses an unknown one.
  if (key === null || key !== ctx.params.key) throw noSuchUpload(uploadId);
  await rm(dir, { recursive: true, force: true });
  ctx.status = 204;
};

/**
 * Registers both with s3rver's router, each right before s3rver's own route for the same method
 * and path (which refuses them), behind the same authentication, query parsing and bucket checks.
 * The router matches its stack at every request, so this takes effect for all of them.
 */
export function serveMultipartUploads(): void {
  const place = (path: string, method: string, register: () => void): void => {
    register();
    const layer = router.stack.pop() as Layer;
    const at = router.stack.findIndex((l) => l.path === path && l.methods.includes(method));
    router.stack.splice(at < 0 ? router.stack.length : at, 0, layer);
  };
  place("/:bucket", "GET", () => router.get("/:bucket", listUploads));
  place("/:bucket/:key+", "DELETE", () => router.delete("/:bucket/:key+", abortUpload));
}
