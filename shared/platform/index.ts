/** Process-level plumbing every service shares: clock, structured logging, shutdown. */
export { type Clock, systemClock } from "./clock.ts";
export { commaList, envBool } from "./env.ts";
export { listen } from "./http-server.ts";
export { createLogger, type Logger } from "./logger.ts";
export { type Metric, PROMETHEUS_CONTENT_TYPE, prometheusText } from "./metrics.ts";
export { requestId } from "./request-id.ts";
export { onShutdown } from "./shutdown.ts";
export { readSse } from "./sse-client.ts";
