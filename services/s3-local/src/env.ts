import { logLevel } from "@loracast/shared/platform";
import { z } from "zod";

/** s3-local's environment, parsed once at start by `main.ts`. */
export const envSchema = z.object({
  /** Interface to listen on; loopback by default, since the server has no real auth. */
  S3_LOCAL_HOST: z.string().default("127.0.0.1"),
  /** Port; 0 picks a free one, printed on the ready line. */
  S3_LOCAL_PORT: z.coerce.number().int().min(0).max(65535).default(9000),
  /** Where objects live on disk. */
  S3_LOCAL_DIR: z.string().default(".data/s3"),
  /** Bucket created at start if missing. */
  S3_BUCKET: z.string().min(3).default("loracast"),
  /** Lowest level logged: debug, info, warn or error. */
  LOG_LEVEL: logLevel,
});
