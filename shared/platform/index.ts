/** Process-level plumbing every service shares: clock, structured logging, shutdown. */

export { parseCommandLine, usageError } from "./cli.ts";
export { type Clock, systemClock } from "./clock.ts";
export { commaList, envBool, logLevel } from "./env.ts";
export { listen } from "./http-server.ts";
export { createLogger, LOG_LEVELS, type Logger, type LogLevel } from "./logger.ts";
export {
  Counter,
  createMetricsRegistry,
  Histogram,
  httpMetrics,
  metricsHandler,
  observedCounter,
  observedGauge,
  PROMETHEUS_CONTENT_TYPE,
  Registry,
} from "./metrics.ts";
export { requestId } from "./request-id.ts";
export { onShutdown } from "./shutdown.ts";
export { readSse } from "./sse-client.ts";
export { SSE_HEARTBEAT, sseHeartbeatSeconds, startSseHeartbeat } from "./sse-heartbeat.ts";
