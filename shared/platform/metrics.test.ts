import assert from "node:assert/strict";
import { it } from "node:test";
import { Hono } from "hono";
import {
  createLogger,
  createMetricsRegistry,
  httpMetrics,
  metricsHandler,
  observedCounter,
  observedGauge,
} from "./index.ts";

it("times requests by route pattern, method and status class; unmatched paths and odd methods stay bounded", async () => {
  const registry = createMetricsRegistry({ processMetrics: false });
  let t = 0;
  const app = new Hono();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({}, { level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  app.use("*", httpMetrics(registry, { log, now: () => (t += 250) }));
  const sub = new Hono();
  sub.get("/v1/runs/:id", (c) => c.json({ id: c.req.param("id") }));
  app.route("/", sub);
  app.get("/metrics", metricsHandler(registry));
  for (const id of ["a", "b", "c"]) assert.equal((await app.request(`/v1/runs/${id}`)).status, 200);
  assert.equal((await app.request("/nothing/here")).status, 404);
  assert.equal((await app.request("/v1/runs/a", { method: "PROPFIND" })).status, 404);
  const res = await app.request("/metrics");
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /^# HELP loracast_http_request_duration_seconds \S/m);
  assert.match(text, /^# TYPE loracast_http_request_duration_seconds histogram$/m);
  const count = (labels: string) =>
    new RegExp(`^loracast_http_request_duration_seconds_count\\{${labels}\\} (\\d+)$`, "m").exec(text)?.[1];
  assert.equal(count('route="/v1/runs/:id",method="GET",status_class="2xx"'), "3");
  assert.equal(count('route="unmatched",method="GET",status_class="4xx"'), "1");
  assert.equal(count('route="unmatched",method="OTHER",status_class="4xx"'), "1");
  assert.ok(!text.includes("/v1/runs/a"), "no raw path in a label");
  // One debug line a request, by pattern too (the /metrics scrape's own line comes after).
  assert.deepEqual(
    lines.slice(0, 5).map((l) => [l.level, l.msg, l.method, l.route, l.status, l.ms]),
    [
      ["debug", "request", "GET", "/v1/runs/:id", 200, 250],
      ["debug", "request", "GET", "/v1/runs/:id", 200, 250],
      ["debug", "request", "GET", "/v1/runs/:id", 200, 250],
      ["debug", "request", "GET", "unmatched", 404, 250],
      ["debug", "request", "OTHER", "unmatched", 404, 250],
    ],
  );
  // The fake clock advances 250 ms a reading: each request took 0.25 s.
  assert.match(
    text,
    /^loracast_http_request_duration_seconds_sum\{route="\/v1\/runs\/:id",method="GET",status_class="2xx"\} 0\.75$/m,
  );
});

it("observed gauges and counters show what `read` gives at each scrape, labels in order, HELP and TYPE always", async () => {
  const registry = createMetricsRegistry({ processMetrics: false });
  let delivered = 2;
  let rows: [Record<string, string>, number][] = [[{ run: "x", finding: "stale_head" }, 1]];
  observedCounter(registry, { name: "a_total", help: "A.", read: () => delivered });
  observedGauge(registry, { name: "b", help: "B.", labelNames: ["run", "finding"], read: async () => rows });
  observedCounter(registry, { name: "c_total", help: "C.", labelNames: ["reason"], read: () => [] });
  assert.equal(
    await registry.metrics(),
    '# HELP a_total A.\n# TYPE a_total counter\na_total 2\n\n# HELP b B.\n# TYPE b gauge\nb{run="x",finding="stale_head"} 1\n\n# HELP c_total C.\n# TYPE c_total counter\n',
  );
  delivered = 5;
  rows = [];
  const second = await registry.metrics();
  assert.match(second, /^a_total 5$/m);
  assert.doesNotMatch(second, /^b\{/m, "a finding gone since the last scrape is gone from it");
});

it("keeps each registry's series apart", async () => {
  const one = createMetricsRegistry({ processMetrics: false });
  const two = createMetricsRegistry({ processMetrics: false });
  observedGauge(one, { name: "same_name", help: "One.", read: () => 1 });
  observedGauge(two, { name: "same_name", help: "Two.", read: () => 2 });
  assert.match(await one.metrics(), /^same_name 1$/m);
  assert.match(await two.metrics(), /^same_name 2$/m);
});
