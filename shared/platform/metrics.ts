/**
 * Prometheus metrics through prom-client (https://github.com/siimots/prom-client): one `Registry`
 * per service instance, never prom-client's global one, so that several services or apps in one
 * process (tests, benches) keep their series apart. The text exposition (format 0.0.4, HELP and TYPE
 * lines) is prom-client's.
 */
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "./logger.ts";

export { Counter, Histogram, Registry };

/** The `content-type` of Prometheus' text exposition format 0.0.4, as prom-client serves it. */
export const PROMETHEUS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * A new registry for one service instance. `processMetrics` adds prom-client's default process
 * series (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `nodejs_eventloop_lag_*`,
 * …): on for a service's process (main.ts), off where many apps share one process.
 */
export function createMetricsRegistry(options: { processMetrics: boolean }): Registry {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/** One unlabelled sample, or labelled samples (either may be empty: HELP and TYPE still show). */
type Samples = number | readonly (readonly [labels: Readonly<Record<string, string>>, value: number])[];

/** A metric whose value is read from state the service keeps anyway, at each scrape. */
interface ObservedMetric {
  name: string;
  help: string;
  /** The label names `read`'s samples carry; none for an unlabelled metric. */
  labelNames?: readonly string[];
  read: () => Samples | Promise<Samples>;
}

function samplesOf(s: Samples): readonly (readonly [Readonly<Record<string, string>>, number])[] {
  return typeof s === "number" ? [[{}, s]] : s;
}

/**
 * prom-client options for a metric whose samples `m.read` gives at each scrape: they replace the
 * previous scrape's, through `put` (a gauge's `set`, a counter's `inc` from zero).
 */
function readAtScrape<T extends Gauge | Counter>(
  registry: Registry,
  m: ObservedMetric,
  put: (metric: T, labels: Readonly<Record<string, string>>, value: number) => void,
) {
  return {
    name: m.name,
    help: m.help,
    labelNames: m.labelNames ?? [],
    registers: [registry],
    async collect(this: T) {
      const samples = samplesOf(await m.read());
      this.reset();
      for (const [labels, value] of samples) put(this, labels, value);
    },
  };
}

/**
 * Registers a gauge read at each scrape (cache bytes, pending deliveries, the active version):
 * `read` gives its samples, which replace the previous scrape's.
 */
export function observedGauge(registry: Registry, m: ObservedMetric): void {
  new Gauge(readAtScrape<Gauge>(registry, m, (g, labels, value) => g.set(labels, value)));
}

/**
 * Registers a counter whose totals a component already keeps (`stats.activations`, an outbox's
 * `stats.delivered`): `read` gives them at each scrape. They must only grow, as a counter does.
 */
export function observedCounter(registry: Registry, m: ObservedMetric): void {
  new Counter(readAtScrape<Counter>(registry, m, (c, labels, value) => c.inc(labels, value)));
}

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * Hono middleware timing every request into `loracast_http_request_duration_seconds{route, method,
 * status_class}`. `route` is the pattern of the handler the request matched (`/v1/runs/:run/events`,
 * never the raw path) or `unmatched`, and methods outside the standard ones count as `OTHER`, so
 * that the labels stay bounded whatever clients send. The time runs until the handler returns its
 * response: a streamed body (SSE, `stream: true`) is timed to its first byte, not its end.
 * With `log`, each request also gets one `debug` line, `request` with `method`, `route`, `status`
 * and `ms` (the request id comes from the request's context: `requestId` runs before this).
 * `now` is in milliseconds (`performance.now` by default).
 */
export function httpMetrics(
  registry: Registry,
  options: { log?: Logger; now?: () => number } = {},
): MiddlewareHandler {
  const now = options.now ?? (() => performance.now());
  const duration = new Histogram({
    name: "loracast_http_request_duration_seconds",
    help: "HTTP request latency in seconds, by route pattern, method and status class, to the response's first byte.",
    labelNames: ["route", "method", "status_class"],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return async (c, next) => {
    const start = now();
    try {
      await next();
    } finally {
      // Middleware registers as method ALL; the last route of another method is the handler.
      const handler = matchedRoutes(c).findLast((r) => r.method !== "ALL");
      const upper = c.req.method.toUpperCase();
      const method = METHODS.has(upper) ? upper : "OTHER";
      const route = handler?.path ?? "unmatched";
      const seconds = (now() - start) / 1000;
      duration.observe(
        {
          route,
          method,
          status_class: `${Math.floor(c.res.status / 100)}xx`,
        },
        seconds,
      );
      options.log?.debug("request", {
        method,
        route,
        status: c.res.status,
        ms: Math.round(seconds * 1e4) / 10,
      });
    }
  };
}

/** `GET /metrics`'s handler: the registry's text exposition with its content type. */
export function metricsHandler(registry: Registry): MiddlewareHandler {
  return async (c) => c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
}
