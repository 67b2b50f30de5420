import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { webhookUrl } from "@loracast/dev-support/stack";
import type { Service } from "@loracast/dev-support/supervisor";
import { publishResultSchema, runVersionsSchema, trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { LLAMA_7B_DIMS, randomAdapter, writeBaseConfig } from "../helpers/adapters.ts";
import { startS3 } from "../helpers/s3.ts";
import { startStack } from "../helpers/stack.ts";

const port = (s: Service) => Number(new URL(s.url).port);

describe("outages and crashes", () => {
  it("fails a publish cleanly while S3 is down, leaves nothing half-written, and recovers", async () => {
    const stack = await startStack({ generators: 1 });
    try {
      const g = stack.generators[0] as Service;
      assert.equal((await stack.publish("o", randomAdapter(LLAMA_CONFIG, 1, 2, ["q_proj"]))).status, 201);
      await stack.waitActive(g, "o", 1);

      await stack.s3.stop();
      const t0 = Date.now();
      const res = await stack.publish("o", randomAdapter(LLAMA_CONFIG, 2, 2, ["q_proj"]));
      const elapsed = Date.now() - t0;
      assert.equal(res.status, 503);
      const body = trainerErrorBodySchema.parse(await res.json());
      assert.equal(body.error.code, "store_unavailable");
      assert.match(body.error.message, /object store .* failed/);
      assert.ok(elapsed < 10_000, `failed within its retry budget (${elapsed} ms)`);
      assert.equal(
        (await stack.adapters(g)).active.o?.version,
        1,
        "the generator keeps serving through the outage",
      );

      const s3 = await startS3(stack.s3.dir, port(stack.s3));
      Object.assign(stack.s3, { proc: s3.proc, stop: s3.stop });
      const versions = runVersionsSchema.parse(
        await (await fetch(`${stack.trainer.url}/v1/runs/o/versions`)).json(),
      );
      assert.equal(versions.versions.length, 1, "no version became visible from the failed publish");
      const again = await stack.publish("o", randomAdapter(LLAMA_CONFIG, 2, 2, ["q_proj"]));
      assert.equal(again.status, 201);
      assert.equal(publishResultSchema.parse(await again.json()).version, 2);
      await stack.waitActive(g, "o", 2);
    } finally {
      await stack.stop();
    }
  });

  it("delivers webhooks left in the outbox after a trainer restart", async () => {
    const stack = await startStack({ generators: 0 });
    try {
      // A generator that is down when the trainer publishes: reserve its port and subscribe to it.
      const first = await stack.startGenerator("late");
      const url = first.url;
      await first.stop();
      await stack.trainer.stop();
      await stack.startTrainer({ WEBHOOK_SUBSCRIBERS: webhookUrl(url), WEBHOOK_RETRIES: "1" });
      const res = await stack.publish("ob", randomAdapter(LLAMA_CONFIG, 5, 2, ["q_proj"]));
      assert.equal(res.status, 201);
      await stack.trainer.waitForLog((l) => l.msg === "webhook attempt failed");
      await stack.trainer.kill();

      // Reconcile is slowed to a crawl so that only the webhook can bring the version in quickly.
      const g = await stack.startGenerator(
        "late",
        { RECONCILE_INTERVAL_MS: "600000" },
        Number(new URL(url).port),
      );
      stack.generators.push(g);
      const trainer = await stack.startTrainer({ WEBHOOK_SUBSCRIBERS: webhookUrl(url) });
      await trainer.waitForLog((l) => l.msg === "webhook delivered" && l.run === "ob" && l.version === 1);
      await g.waitForLog((l) => l.msg === "webhook accepted" && l.run === "ob" && l.version === 1);
      await stack.waitActive(g, "ob", 1);
      const metrics = await (await fetch(`${trainer.url}/metrics`)).text();
      assert.match(metrics, /loracast_webhooks_pending 0/);
    } finally {
      await stack.stop();
    }
  });

  it("converges within one reconcile interval when a generator was down for the webhook", async () => {
    const stack = await startStack({ generators: 1, generatorEnv: { RECONCILE_INTERVAL_MS: "1000" } });
    try {
      const g = stack.generators[0] as Service;
      await g.stop();
      assert.equal((await stack.publish("down", randomAdapter(LLAMA_CONFIG, 7, 2, ["q_proj"]))).status, 201);
      const back = await stack.startGenerator("g0", {}, port(g));
      // Measured from the moment it is up, so a loaded machine's slow start-up is not counted.
      const up = Date.now();
      stack.generators[0] = back;
      const row = await stack.waitActive(back, "down", 1, 5000);
      assert.ok(row.activatedAt !== null, "activated");
      assert.ok(
        row.activatedAt - up < 1000 + 1000,
        `active within one interval of coming back (${row.activatedAt - up} ms after it was up)`,
      );
    } finally {
      await stack.stop();
    }
  });

  it("converges after a generator is killed mid-download and restarted", async () => {
    // A 7B-shaped base makes the adapter large enough (about 34 MB) to kill the download midway.
    const stack = await startStack({ generators: 0 });
    try {
      const base = writeBaseConfig(join(stack.dir, "big"), LLAMA_7B_DIMS);
      const g = await stack.startGenerator("big", { GENERATOR_BASE_CONFIG: base });
      await stack.trainer.stop();
      await stack.startTrainer({ WEBHOOK_SUBSCRIBERS: webhookUrl(g.url) });
      const adapter = randomAdapter(base, 9, 8, ["q_proj", "k_proj", "v_proj", "o_proj"]);
      const res = await stack.publish("crash", adapter);
      assert.equal(res.status, 201);
      await g.waitForLog((l) => l.msg === "webhook accepted" && l.run === "crash");
      await g.kill();
      const rows = g.logs.filter((l) => l.msg === "adapter activated");
      assert.equal(rows.length, 0, "killed before it could activate");
      const back = await stack.startGenerator("big", { GENERATOR_BASE_CONFIG: base }, port(g));
      stack.generators.push(back);
      await stack.waitActive(back, "crash", 1, 30_000);
    } finally {
      await stack.stop();
    }
  });
});
