/**
 * ListObjects (v1 and v2) for the embedded server, replacing s3rver's. s3rver's listing loses
 * common prefixes whose objects all sit two or more levels below them (a delimiter listing of
 * `runs/` found no run, so generators following every run never discovered one), returns keys in
 * directory-walk order rather than S3's byte order, counts common prefixes outside `max-keys`, and
 * builds continuation tokens from the last key only (a page ending in common prefixes repeated
 * them; one holding only common prefixes crashed). This one lists as S3 does: keys and common
 * prefixes in UTF-8 byte order, both counting toward `max-keys` (at most 1000), continuation after
 * the page's last entry, `start-after` (v2) and `marker` (v1). `encoding-type` stays unimplemented,
 * as in s3rver.
 */
import { join } from "node:path";
import bucketModule from "s3rver/lib/controllers/bucket.js";
import filesystemModule from "s3rver/lib/stores/filesystem.js";
import { DUMMY_ACCOUNT, S3Error } from "../s3rver-internals.ts";
import { type KeyPathCodec, keysUnder } from "./keys.ts";
import { listPage } from "./page.ts";

/** The part of s3rver's Koa context a listing reads and writes. */
interface ListContext {
  params: { bucket: string };
  query: Record<string, string | string[] | undefined>;
  store: {
    rootDirectory: string;
    getMetadata(bucket: string, key: string): Promise<Record<string, string | number>>;
  };
  body: unknown;
}

const bucketController = bucketModule as {
  getBucket: (ctx: ListContext) => Promise<void>;
};
const FilesystemStore = filesystemModule as KeyPathCodec;

/** S3's limit on entries per page, whatever `max-keys` asks for. */
const PAGE_LIMIT = 1000;
const TOKEN_TAG = "loracast-list-v1:";

/** Opaque to clients, like S3's: the entry the next page starts after. */
function encodeToken(after: string): string {
  return Buffer.from(TOKEN_TAG + after).toString("base64url");
}

function decodeToken(token: string): string {
  const text = Buffer.from(token, "base64url").toString("utf8");
  if (!text.startsWith(TOKEN_TAG)) {
    throw new S3Error("InvalidArgument", "The continuation token provided is incorrect", {
      ArgumentName: "continuation-token",
    });
  }
  return text.slice(TOKEN_TAG.length);
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `max-keys` as S3 validates it: an integer in [0, 2^31 - 1], served as at most 1000. */
function parseMaxKeys(raw: string | undefined): number {
  if (raw === undefined || raw === "") return PAGE_LIMIT;
  if (!/^-?\d+$/.test(raw)) {
    throw new S3Error("InvalidArgument", "Provided max-keys not an integer or within integer range", {
      ArgumentName: "max-keys",
      ArgumentValue: raw,
    });
  }
  const n = Number(raw);
  if (n < 0 || n > 2147483647) {
    throw new S3Error("InvalidArgument", "Argument maxKeys must be an integer between 0 and 2147483647", {
      ArgumentName: "maxKeys",
      ArgumentValue: n,
    });
  }
  return Math.min(PAGE_LIMIT, n);
}

/** Where the page starts: v2's continuation token or `start-after`, v1's `marker`; "" for the start. */
function parseStart(query: ListContext["query"], v2: boolean): string {
  if (v2) {
    if ("marker" in query) {
      throw new S3Error("InvalidArgument", "Marker unsupported with REST.GET.BUCKET in list-type=2", {
        ArgumentName: "marker",
      });
    }
    const token = one(query["continuation-token"]);
    return token ? decodeToken(token) : (one(query["start-after"]) ?? "");
  }
  if ("continuation-token" in query) {
    throw new S3Error(
      "InvalidArgument",
      "continuation-token only supported in REST.GET.BUCKET with list-type=2",
      { ArgumentName: "continuation-token" },
    );
  }
  if ("start-after" in query) {
    throw new S3Error("InvalidArgument", "startAfter only supported in REST.GET.BUCKET with list-type=2", {
      ArgumentName: "start-after",
    });
  }
  return one(query.marker) ?? "";
}

async function listObjects(ctx: ListContext): Promise<void> {
  const { query } = ctx;
  const bucket = ctx.params.bucket;
  const v2 = one(query["list-type"]) === "2";
  const prefix = one(query.prefix) ?? "";
  const delimiter = one(query.delimiter) ?? "";
  const maxKeys = parseMaxKeys(one(query["max-keys"]));
  const startAfter = parseStart(query, v2);
  // S3 answers max-keys=0 with an empty, untruncated page.
  const page =
    maxKeys === 0
      ? { keys: [], commonPrefixes: [], isTruncated: false }
      : listPage(await keysUnder(join(ctx.store.rootDirectory, bucket), prefix, FilesystemStore), {
          prefix,
          delimiter,
          startAfter,
          maxKeys,
        });
  const found = await Promise.all(
    page.keys.map((key) =>
      ctx.store.getMetadata(bucket, key).then(
        (metadata) => ({ key, metadata }),
        (e: NodeJS.ErrnoException) => {
          // Deleted between the walk and now: S3 would not list it either.
          if (e.code === "ENOENT") return null;
          throw e;
        },
      ),
    ),
  );
  const objects = found.filter((o) => o !== null);
  const token = one(query["continuation-token"]);
  const next = page.isTruncated ? page.next : undefined;
  ctx.body = {
    ListBucketResult: {
      "@": { xmlns: "http://doc.s3.amazonaws.com/2006-03-01/" },
      Name: bucket,
      Prefix: prefix,
      ...(v2
        ? {
            StartAfter: token ? undefined : one(query["start-after"]),
            ContinuationToken: token || undefined,
            NextContinuationToken: next === undefined ? undefined : encodeToken(next),
            KeyCount: objects.length + page.commonPrefixes.length,
          }
        : {
            Marker: startAfter,
            // S3 sends NextMarker only with a delimiter; without one, clients continue after the last key.
            NextMarker: delimiter !== "" ? next : undefined,
          }),
      MaxKeys: one(query["max-keys"]) || PAGE_LIMIT,
      Delimiter: delimiter || undefined,
      IsTruncated: page.isTruncated,
      Contents: objects.map(({ key, metadata }) => ({
        Key: key,
        LastModified: new Date(String(metadata["last-modified"])).toISOString(),
        ETag: metadata.etag,
        Size: Number(metadata["content-length"]),
        Owner:
          v2 && one(query["fetch-owner"]) !== "true"
            ? undefined
            : { ID: DUMMY_ACCOUNT.id, DisplayName: DUMMY_ACCOUNT.displayName },
        StorageClass: "STANDARD",
      })),
      CommonPrefixes: page.commonPrefixes.map((p) => ({ Prefix: p })),
    },
  };
}

/**
 * Makes the embedded server list as S3 does (see above). s3rver's router looks the controller up
 * on every request, so replacing it here, before the first request, takes effect for all of them.
 */
export function listLikeS3(): void {
  bucketController.getBucket = listObjects;
}
