/**
 * Counts every request the embedded server answers, by S3 operation (`./operation.ts`), and serves
 * the counts as Prometheus text at `GET /_metrics` (`loracast_s3_requests_total{operation}`). S3
 * bucket names cannot contain `_`, so that path never shadows a bucket. The fleet benchmark and
 * test read them to report store requests per version as the store saw them, not as estimated.
 */
import { createMetricsRegistry, observedCounter } from "@loracast/shared/platform";
import type S3rver from "s3rver";
import { S3_OPERATIONS, type S3Operation, s3Operation } from "./operation.ts";

/** Where the counts are served. */
export const METRICS_PATH = "/_metrics";

/**
 * Installs the counter as the server's first middleware (before s3rver's logger, router and error
 * handling), so a request counts whatever s3rver answers, errors included. Call before `run()`:
 * Koa composes its middleware when the server starts listening.
 */
export function countRequests(server: S3rver): void {
  const counts = new Map<S3Operation, number>(S3_OPERATIONS.map((op) => [op, 0]));
  const registry = createMetricsRegistry({ processMetrics: false });
  observedCounter(registry, {
    name: "loracast_s3_requests_total",
    help: "Requests the embedded S3 server answered, errors included, by S3 operation.",
    labelNames: ["operation"],
    read: () => [...counts].map(([operation, n]) => [{ operation }, n]),
  });
  server.middleware.unshift(async (ctx, next) => {
    if (ctx.method === "GET" && ctx.path === METRICS_PATH) {
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
      return;
    }
    const op = s3Operation(
      ctx.method,
      ctx.path,
      new URLSearchParams(ctx.querystring),
      ctx.get("x-amz-copy-source") || undefined,
    );
    counts.set(op, (counts.get(op) ?? 0) + 1);
    await next();
  });
}
