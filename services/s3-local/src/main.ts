/**
 * The embedded S3-compatible server for local runs and tests: s3rver on loopback, with the bucket
 * created. Access key and secret are both `S3RVER`. Listings are served by ./listing (s3rver's own
 * loses common prefixes and mis-pages), object reads and writes by ./whole-objects (s3rver's could
 * answer a body being overwritten, or one version's body with another's metadata), and ListMultipartUploads and
 * AbortMultipartUpload (s3rver has neither) by ./multipart. Every request is counted by operation
 * (./request-counts), served as Prometheus text at `/_metrics`.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { createLogger, onShutdown, parseCommandLine } from "@loracast/shared/platform";
import S3rver from "s3rver";
import { envSchema } from "./env.ts";
import { listLikeS3 } from "./listing/index.ts";
import { serveMultipartUploads } from "./multipart/index.ts";
import { countRequests, METRICS_PATH } from "./request-counts/index.ts";
import { keepObjectsWhole } from "./whole-objects/index.ts";

parseCommandLine({
  usage: "node --import tsx services/s3-local/src/main.ts",
  about:
    "The embedded S3-compatible server (s3rver) for local runs and tests; access key and secret are both S3RVER. Configured by the environment only.",
  flags: {},
  env: envSchema,
});
const parsed = envSchema.safeParse(process.env);
if (!parsed.success) {
  const log = createLogger({ service: "s3-local" });
  for (const i of parsed.error.issues)
    log.error("invalid configuration", { variable: i.path.join("."), problem: i.message });
  process.exit(2);
}
const env = parsed.data;
const log = createLogger({ service: "s3-local" }, { level: env.LOG_LEVEL });
const directory = resolve(env.S3_LOCAL_DIR);
mkdirSync(directory, { recursive: true });

const server = new S3rver({
  address: env.S3_LOCAL_HOST,
  port: env.S3_LOCAL_PORT,
  directory,
  silent: true,
  configureBuckets: [{ name: env.S3_BUCKET, configs: [] }],
});
countRequests(server);
keepObjectsWhole(server);
listLikeS3();
serveMultipartUploads();
const address = await server.run();
const url = `http://${address.address}:${address.port}`;
onShutdown(log, () => server.close());
// Only once SIGTERM is handled: whoever waits for this line may stop the server at once.
log.info("ready", {
  url,
  bucket: env.S3_BUCKET,
  directory,
  accessKeyId: "S3RVER",
  metrics: `${url}${METRICS_PATH}`,
});
