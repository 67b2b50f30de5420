/**
 * Issue 20's ops surface on real processes: the embedded S3 server, a trainer with the demo base and
 * a generator serving the same artifacts. After real traffic (a 2-step GRPO run over REST, a
 * completion, a request to no route) each service's `/metrics` is parsed with the Prometheus
 * project's parser: every family has HELP and TYPE, and the new series moved. Then the trainer's
 * `/readyz` follows a store outage: 503 naming the store while S3 is down, ready again after.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { readSse } from "@loracast/shared/platform";
import {
  runStreamEventSchema,
  trainerErrorBodySchema,
  trainerReadinessSchema,
} from "@loracast/shared/trainer-api";
import { type MetricFamily, parsePrometheus, sampleValue } from "../helpers/prometheus.ts";
import { startS3 } from "../helpers/s3.ts";
import { type Stack, startStack } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson } from "../helpers/training.ts";

const RUN = "metrics-run";

/** Scrapes and parses `url`/metrics, checking the content type and that every family is described. */
async function scrape(s: Service): Promise<MetricFamily[]> {
  const res = await fetch(`${s.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const families = await parsePrometheus(await res.text());
  for (const f of families) {
    assert.notEqual(f.help, "", `${f.name} has a HELP line`);
    assert.notEqual(f.type, "unknown", `${f.name} has a TYPE line`);
  }
  return families;
}

/** The value of a sample that must exist. */
function value(families: readonly MetricFamily[], name: string, labels: Record<string, string> = {}): number {
  const v = sampleValue(families, name, labels);
  assert.ok(v !== undefined, `${name}${JSON.stringify(labels)} is exposed`);
  return v;
}

describe("Prometheus metrics and trainer readiness", () => {
  let stack: Stack;
  let work: string;
  let g: Service;
  /** The versions the run published, from its event stream. */
  let versions: number[];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-metrics-"));
    const fixture = await buildTrainingFixture(work);
    stack = await startStack({
      generators: 1,
      generatorEnv: { GENERATOR_MODEL_DIR: fixture.modelDir, GENERATOR_BASE_CONFIG: "" },
      trainerEnv: { TRAINER_MODEL_DIR: fixture.modelDir, TRAINER_THREADS: "1" },
    });
    g = stack.generators[0] as Service;
    const res = await postJson(`${stack.trainer.url}/v1/runs`, grpoRun(RUN, fixture.dataset, 2));
    assert.equal(res.status, 201, await res.text());
    versions = [];
    for await (const data of readSse(`${stack.trainer.url}/v1/runs/${RUN}/events`)) {
      const e = runStreamEventSchema.parse(data);
      if (e.type === "published") versions.push(e.version);
      if (e.type === "status") assert.equal(e.status, "completed", e.error ?? "");
    }
    assert.ok(versions.length >= 1, "the run published");
  });
  after(async () => {
    await stack?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("trainer: request latency by route pattern, step and publish phases, webhook outcomes", async () => {
    // Delivery is asynchronous: the version's webhook may still be on its way.
    await eventually(
      "the version's webhook delivered",
      async () => {
        const m = await scrape(stack.trainer);
        return (sampleValue(m, "loracast_webhook_deliveries_total", { outcome: "delivered" }) ?? 0) >=
          versions.length
          ? true
          : undefined;
      },
      20_000,
    );
    const m = await scrape(stack.trainer);
    const route = (r: string, status_class: string) =>
      value(m, "loracast_http_request_duration_seconds_count", { route: r, status_class });
    assert.equal(route("/v1/runs", "2xx"), 1, "the run's creation, counted under its route");
    assert.ok(route("/v1/runs/:id/events", "2xx") >= 1, "the event stream, under its pattern");
    const routes = new Set(
      m.flatMap((f) => f.samples.map((s) => s.labels.route)).filter((r) => r !== undefined),
    );
    assert.ok(!routes.has(`/v1/runs/${RUN}/events`), "never the raw path");

    assert.equal(value(m, "loracast_trainer_steps_total"), 2);
    // TRAINER_CUDA_TF32 says nothing off cuda, and /metrics says so rather than "off".
    assert.equal(value(m, "loracast_trainer_cuda_tf32_info", { tf32: "not_applicable" }), 1);
    for (const phase of ["rollout", "reward", "train", "optimizer", "publish", "checkpoint"])
      assert.ok(value(m, "loracast_trainer_step_phase_seconds_count", { phase }) >= 1, phase);
    // Every publish observes every phase once (the run loop's encode too, and hashWait: the wait for
    // the sha256 hashed on a worker thread beside validation; repair and numbering overlap, under
    // "number"); one webhook per version to the one generator.
    const n = versions.length;
    const phases = [
      "encode",
      "validate",
      "hashWait",
      "lock",
      "number",
      "blobs",
      "extras",
      "manifest",
      "head",
      "notify",
    ];
    for (const phase of phases)
      assert.equal(value(m, "loracast_trainer_publish_phase_seconds_count", { phase }), n, phase);
    assert.equal(value(m, "loracast_trainer_publish_seconds_count"), n);
    assert.equal(value(m, "loracast_webhook_deliveries_total", { outcome: "delivered" }), n);
    assert.equal(value(m, "loracast_webhook_deliveries_total", { outcome: "dead" }), 0);
    assert.equal(value(m, "loracast_webhook_delivery_seconds_count"), n);
    assert.equal(value(m, "loracast_webhooks_delivered_total"), n, "the earlier name stays");
    assert.ok(value(m, "process_cpu_seconds_total") > 0, "process metrics on the service's registry");
  });

  it("generator: time to first token, decode rate, queue depth, publish → active, request latency", async () => {
    const newest = versions.at(-1) as number;
    await stack.waitActive(g, RUN, newest);
    const res = await fetch(`${g.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: RUN, prompt: "q5:", max_tokens: 8, ignore_eos: true }),
    });
    assert.equal(res.status, 200, await res.text());
    assert.equal((await fetch(`${g.url}/v1/no-such-route/abc123`)).status, 404);

    const m = await scrape(g);
    assert.equal(
      value(m, "loracast_http_request_duration_seconds_count", {
        route: "/v1/completions",
        method: "POST",
        status_class: "2xx",
      }),
      1,
    );
    assert.equal(
      value(m, "loracast_http_request_duration_seconds_count", { route: "unmatched", status_class: "4xx" }),
      1,
      "a path no route matches is counted as unmatched",
    );
    assert.ok(
      value(m, "loracast_http_request_duration_seconds_count", { route: "/v1/webhooks/adapters" }) >= 1,
      "the trainer's webhook",
    );
    assert.equal(value(m, "loracast_generator_time_to_first_token_seconds_count"), 1);
    assert.equal(value(m, "loracast_generator_decode_tokens_per_second_count"), 1);
    assert.ok(value(m, "loracast_generator_decode_tokens_per_second_sum") > 0);
    assert.equal(value(m, "loracast_engine_generated_tokens_total"), 8);
    assert.equal(value(m, "loracast_generator_queue_depth"), 0, "nothing waits once the request is answered");
    // One observation per activation; a version superseded before it was pulled is never activated.
    const activations = value(m, "loracast_adapter_activations_total");
    assert.ok(activations >= 1 && activations <= versions.length, `${activations} activations`);
    assert.equal(value(m, "loracast_generator_publish_to_active_seconds_count"), activations);
    const publishToActive = value(m, "loracast_generator_publish_to_active_seconds_sum");
    assert.ok(publishToActive >= 0 && publishToActive < 60 * activations, `${publishToActive} s in all`);
    assert.equal(value(m, "loracast_active_adapter_version", { run: RUN }), newest);
  });

  it("trainer /readyz: ready with its checks, 503 naming the store while S3 is down, ready again", async () => {
    const ready = await fetch(`${stack.trainer.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(trainerReadinessSchema.parse(await ready.json()).checks, {
      store: "ok",
      outbox: "ok",
      model: "loaded",
    });

    const port = Number(new URL(stack.s3.url).port);
    await stack.s3.stop();
    // Its last answer is reused for a second at most.
    const down = await eventually(
      "/readyz answers 503",
      async () => {
        const r = await fetch(`${stack.trainer.url}/readyz`);
        return r.status === 503 ? trainerErrorBodySchema.parse(await r.json()) : undefined;
      },
      15_000,
    );
    assert.equal(down.error.code, "not_ready");
    assert.match(down.error.message, /^not ready: store: /);
    assert.equal((await fetch(`${stack.trainer.url}/healthz`)).status, 200, "alive all the while");

    const s3 = await startS3(stack.s3.dir, port);
    Object.assign(stack.s3, { proc: s3.proc, stop: s3.stop });
    await eventually(
      "/readyz answers 200 again",
      async () => ((await fetch(`${stack.trainer.url}/readyz`)).status === 200 ? true : undefined),
      15_000,
    );
  });
});
