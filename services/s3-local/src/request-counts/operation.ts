/**
 * Names the S3 API operation of a path-style request (`/<bucket>/<key>`), as AWS's API reference
 * names them (GetObject, ListObjectsV2, UploadPart, …), from its method, path and query alone, so
 * that a request can be counted before s3rver's router sees it. The set of names is closed: anything
 * else is `Other`, so a counter labelled with it stays bounded whatever clients send.
 */

/** The operations the embedded server counts by name; every other request counts as `Other`. */
export const S3_OPERATIONS = [
  "ListBuckets",
  "ListObjects",
  "ListObjectsV2",
  "ListMultipartUploads",
  "HeadBucket",
  "CreateBucket",
  "DeleteBucket",
  "DeleteObjects",
  "GetObject",
  "HeadObject",
  "PutObject",
  "CopyObject",
  "DeleteObject",
  "CreateMultipartUpload",
  "UploadPart",
  "CompleteMultipartUpload",
  "AbortMultipartUpload",
  "Other",
] as const;

/** One of `S3_OPERATIONS`. */
export type S3Operation = (typeof S3_OPERATIONS)[number];

/**
 * The operation of a request: `method` as sent, `pathname` without the query (path-style, so its
 * first segment is the bucket), `sent` its query parameters, `copySource` its `x-amz-copy-source`
 * header.
 * Bucket sub-resources (`?acl`, `?cors`, …) and unknown methods are `Other`.
 */
export function s3Operation(
  method: string,
  pathname: string,
  sent: URLSearchParams,
  copySource?: string,
): S3Operation {
  // The AWS SDK names the operation in `x-id` (the name is derived here, never taken from a client),
  // and a presigned URL carries its signature as `X-Amz-*` parameters: neither names a sub-resource.
  const query = new URLSearchParams(
    [...sent].filter(([k]) => k !== "x-id" && !k.toLowerCase().startsWith("x-amz-")),
  );
  const path = pathname.replace(/^\/+/, "");
  const slash = path.indexOf("/");
  const bucket = slash < 0 ? path : path.slice(0, slash);
  const key = slash < 0 ? "" : path.slice(slash + 1);
  if (bucket === "") return method === "GET" ? "ListBuckets" : "Other";
  if (key === "") return bucketOperation(method, query);
  if ([...query.keys()].some((k) => !OBJECT_PARAMETERS.has(k) && !k.startsWith("response-"))) return "Other";
  switch (method) {
    case "GET":
      return query.has("uploadId") ? "Other" : "GetObject";
    case "HEAD":
      return "HeadObject";
    case "PUT":
      if (query.has("uploadId")) return "UploadPart";
      return copySource === undefined ? "PutObject" : "CopyObject";
    case "POST":
      if (query.has("uploads")) return "CreateMultipartUpload";
      return query.has("uploadId") ? "CompleteMultipartUpload" : "Other";
    case "DELETE":
      return query.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
    default:
      return "Other";
  }
}

/**
 * Query parameters of an object request that name no sub-resource (`?tagging`, `?acl`, … do):
 * multipart's, `versionId` and the `response-*` header overrides.
 */
const OBJECT_PARAMETERS = new Set(["uploadId", "partNumber", "uploads", "versionId"]);

/** Query parameters of a bucket GET that list objects rather than read a sub-resource. */
const LIST_PARAMETERS = new Set([
  "list-type",
  "prefix",
  "delimiter",
  "max-keys",
  "marker",
  "continuation-token",
  "start-after",
  "encoding-type",
  "fetch-owner",
]);

function bucketOperation(method: string, query: URLSearchParams): S3Operation {
  switch (method) {
    case "GET": {
      if (query.has("uploads")) return "ListMultipartUploads";
      if ([...query.keys()].some((k) => !LIST_PARAMETERS.has(k))) return "Other";
      return query.get("list-type") === "2" ? "ListObjectsV2" : "ListObjects";
    }
    case "HEAD":
      return "HeadBucket";
    case "PUT":
      return query.size === 0 ? "CreateBucket" : "Other";
    case "POST":
      return query.has("delete") ? "DeleteObjects" : "Other";
    case "DELETE":
      return query.size === 0 ? "DeleteBucket" : "Other";
    default:
      return "Other";
  }
}
