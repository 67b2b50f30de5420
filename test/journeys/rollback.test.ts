/**
 * Issue 14 item 2: a rolled-back version is not served by name. Real processes: the embedded S3
 * server, the trainer, and generators serving llama-tiny, one for each way a generator learns of
 * the rollback: by webhook (`hooked`), by reconcile only (`polled`, not subscribed), and by starting
 * after it (`fresh`); and one more started after it with GENERATOR_SERVE_REVOKED=true (`allowing`).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import type { Service } from "@loracast/dev-support/supervisor";
import { completionSchema, generatorErrorBodySchema, modelListSchema } from "@loracast/shared/generator-api";
import { runVersionsSchema } from "@loracast/shared/trainer-api";
import { randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startServingStack, TOKEN } from "../helpers/stack.ts";

const RUN = "rollback-journey";
const WAIT_MS = 60_000;

const post = (g: Service, path: string, body: unknown) =>
  fetch(`${g.url}/v1/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const complete = (g: Service, model: string) =>
  post(g, "completions", { model, prompt: "q5:", max_tokens: 2, temperature: 0 });

const modelIds = async (g: Service) =>
  modelListSchema.parse(await (await fetch(`${g.url}/v1/models`)).json()).data;

describe("rollback: a revoked version is refused by name on every generator", () => {
  let stack: Stack;
  let hooked: Service;
  let polled: Service;
  const late: Service[] = [];
  const trainerVersions = async () =>
    runVersionsSchema.parse(await (await fetch(`${stack.trainer.url}/v1/runs/${RUN}/versions`)).json());

  before(async () => {
    ({ stack, generator: hooked } = await startServingStack());
    // Started after the trainer, so not among its webhook subscribers: it learns by reconcile only.
    polled = await stack.startGenerator("polled");
  });
  after(async () => {
    await Promise.all([polled, ...late].map((g) => g?.stop()));
    await stack?.stop();
  });

  it("publishes v1 and v2, and v2 is served by name before any rollback", async () => {
    for (const seed of [1, 2]) {
      const res = await stack.publish(RUN, randomAdapter(LLAMA_CONFIG, seed, 4, ["q_proj", "v_proj"]));
      assert.equal(res.status, 201, await res.text());
    }
    for (const g of [hooked, polled]) await stack.waitActive(g, RUN, 2, WAIT_MS);
    const res = await complete(hooked, `${RUN}@2`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-loracast-adapter-version"), "2");
    // Pinned before the rollback: loading it again afterwards must still be refused.
    assert.equal((await post(hooked, "load_lora_adapter", { lora_name: `${RUN}@2` })).status, 200);
  });

  it("rolls back to v1; the trainer and every generator call v2 revoked", async () => {
    const rb = await fetch(`${stack.trainer.url}/v1/runs/${RUN}/rollback`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ version: 1 }),
    });
    assert.equal(rb.status, 200);
    assert.deepEqual(await rb.json(), { run: RUN, current: 1, revoked: [2] });

    const versions = await trainerVersions();
    assert.equal(versions.current, 1);
    assert.deepEqual(
      versions.versions.map((v) => [v.version, v.state]),
      [
        [1, "active"],
        [2, "revoked"],
      ],
    );
    const reason = versions.versions[1]?.reason ?? "";
    assert.match(reason, new RegExp(`^${RUN}@2 was revoked by rollback to v1 at \\d{4}-\\d\\d-\\d\\dT`));

    late.push(await stack.startGenerator("fresh"));
    for (const g of [hooked, polled, ...late]) {
      await stack.waitActive(g, RUN, 1, WAIT_MS);
      const v2 = (await stack.adapters(g)).data.find((a) => a.run === RUN && a.version === 2);
      assert.equal(v2?.state, "revoked", `${g.name} lists v2 as revoked`);
      assert.equal(v2?.reason, reason, `${g.name} names the same rollback as the trainer`);
    }
    const fresh = late[0] as Service;
    const v2 = (await stack.adapters(fresh)).data.find((a) => a.run === RUN && a.version === 2);
    assert.equal(v2?.activatedAt, null, "a generator started after the rollback never activated v2");
    assert.equal(v2?.loaded, false, "nor even pulled it");
  });

  it("refuses `<run>@2` with 410 adapter_revoked naming the rollback; `<run>` answers on v1", async () => {
    for (const g of [hooked, polled, ...late]) {
      const res = await complete(g, `${RUN}@2`);
      assert.equal(res.status, 410, `${g.name}: ${RUN}@2`);
      const body = generatorErrorBodySchema.parse(await res.json());
      const reason = (await trainerVersions()).versions[1]?.reason;
      assert.deepEqual(
        {
          code: body.error.code,
          message: body.error.message,
          type: body.error.type,
          param: body.error.param,
        },
        { code: "adapter_revoked", message: reason, type: "invalid_request_error", param: "model" },
      );

      const ok = await complete(g, RUN);
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get("x-loracast-adapter-version"), "1");
      assert.equal(completionSchema.parse(await ok.json()).model, `${RUN}@1`);

      const ids = await modelIds(g);
      assert.ok(!ids.some((m) => m.id === `${RUN}@2` || m.root === `${RUN}@2`), `${g.name} lists no @2`);
      assert.equal(ids.find((m) => m.id === RUN)?.root, `${RUN}@1`);
    }

    const reason = (await trainerVersions()).versions[1]?.reason;
    const chat = await post(hooked, "chat/completions", {
      model: `${RUN}@2`,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    assert.equal(chat.status, 410);
    assert.equal(generatorErrorBodySchema.parse(await chat.json()).error.code, "adapter_revoked");
    const load = await post(hooked, "load_lora_adapter", { lora_name: `${RUN}@2` });
    assert.equal(load.status, 410, "loaded before the rollback, refused after it");
    const loadBody = generatorErrorBodySchema.parse(await load.json());
    assert.deepEqual([loadBody.error.message, loadBody.error.param], [reason, "lora_name"]);

    const metrics = await (await fetch(`${hooked.url}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`^loracast_revoked_requests_total\\{run="${RUN}",outcome="refused"\\} 3$`, "m"),
    );
    await hooked.waitForLog((l) => l.msg === "revoked version refused" && l.reason === reason);
  });

  it("serves `<run>@2` by name where the operator allows it, still never as `<run>` nor in /v1/models", async () => {
    const allowing = await stack.startGenerator("allowing", { GENERATOR_SERVE_REVOKED: "true" });
    late.push(allowing);
    await stack.waitActive(allowing, RUN, 1, WAIT_MS);
    const res = await complete(allowing, `${RUN}@2`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-loracast-adapter-version"), "2");
    assert.equal((await complete(allowing, RUN)).headers.get("x-loracast-adapter-version"), "1");
    const v2 = (await stack.adapters(allowing)).data.find((a) => a.run === RUN && a.version === 2);
    assert.equal(v2?.state, "revoked");
    assert.equal((await stack.adapters(allowing)).active[RUN]?.version, 1);
    assert.ok(!(await modelIds(allowing)).some((m) => m.id === `${RUN}@2`));
    const metrics = await (await fetch(`${allowing.url}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`^loracast_revoked_requests_total\\{run="${RUN}",outcome="served"\\} 1$`, "m"),
    );
    await allowing.waitForLog((l) => l.msg === "serving a revoked version (GENERATOR_SERVE_REVOKED)");
  });
});
