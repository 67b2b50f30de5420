import { z } from "zod";
import { envBool as bool } from "../platform/index.ts";
import type { S3Settings } from "./s3-object-store.ts";

/**
 * The S3 variables every service reads, so one set of settings points the whole system at s3rver,
 * MinIO or AWS.
 */
export const s3EnvSchema = z.object({
  /** Endpoint URL for MinIO or the embedded server; unset for AWS. */
  S3_ENDPOINT: z.url().optional(),
  S3_REGION: z.string().default("us-east-1"),
  S3_ACCESS_KEY_ID: z.string().min(1),
  S3_SECRET_ACCESS_KEY: z.string().min(1),
  S3_BUCKET: z.string().min(3),
  /** Key prefix for everything loracast writes, e.g. `loracast` or `team-a/loracast`. */
  S3_PREFIX: z.string().default("loracast"),
  /** Path-style URLs (bucket in the path); MinIO and s3rver need this. */
  S3_FORCE_PATH_STYLE: bool.default(true),
  /** Attempts per S3 request, with the SDK's exponential backoff in between. */
  S3_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  S3_MULTIPART_THRESHOLD_MB: z.coerce.number().positive().default(64),
  S3_PART_SIZE_MB: z.coerce.number().min(5).default(16),
  /** Blob downloads from an http:// endpoint read the socket straight into their buffer. */
  S3_DIRECT_READS: bool.default(true),
  /**
   * Seconds a starting service waits for an unreachable store (connection refused, no answer, 5xx),
   * retrying with backoff and logging each attempt, before it exits 1. A missing bucket or rejected
   * credentials exit 2 at once. 0: one attempt.
   */
  S3_STARTUP_TIMEOUT_S: z.coerce.number().min(0).default(60),
});

/** The `S3Settings` of a parsed `s3EnvSchema` environment (MiB sizes converted to bytes). */
export function s3SettingsFromEnv(env: z.infer<typeof s3EnvSchema>): S3Settings {
  return {
    ...(env.S3_ENDPOINT === undefined ? {} : { endpoint: env.S3_ENDPOINT }),
    region: env.S3_REGION,
    accessKeyId: env.S3_ACCESS_KEY_ID,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    bucket: env.S3_BUCKET,
    prefix: env.S3_PREFIX,
    forcePathStyle: env.S3_FORCE_PATH_STYLE,
    maxAttempts: env.S3_MAX_ATTEMPTS,
    multipartThresholdBytes: Math.round(env.S3_MULTIPART_THRESHOLD_MB * 1024 * 1024),
    partSizeBytes: Math.round(env.S3_PART_SIZE_MB * 1024 * 1024),
    directReads: env.S3_DIRECT_READS,
  };
}
