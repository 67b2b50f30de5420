/**
 * The OpenAPI documents of real services, over loopback HTTP: the embedded S3 server, a trainer
 * with the demo base and a generator serving it. Each service's `GET /openapi.json` is valid
 * OpenAPI 3.1, and real responses of its routes (successes, errors and streams) match the
 * document's schemas for their status and media type: what the documents promise is what the
 * services answer.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  componentChecker,
  type ObservedResponse,
  openApi31Findings,
  responseChecker,
} from "@loracast/dev-support/openapi";
import type { Service } from "@loracast/dev-support/supervisor";
import { systemClock } from "@loracast/shared/platform";
import { signWebhook } from "@loracast/shared/webhooks";
import { SECRET, type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun } from "../helpers/training.ts";

const RUN = "openapi-1";
const auth = { authorization: `Bearer ${TOKEN}` };
const json = { "content-type": "application/json" };

/** A service's document and a client that checks every response against it. */
async function documented(service: Service) {
  const res = await fetch(`${service.url}/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as object;
  const check = responseChecker(doc);
  const findings: string[] = [];
  /** Requests `path` (the template `template` filled in) and checks the answer; returns its status and body. */
  const call = async (method: string, template: string, path = template, init: RequestInit = {}) => {
    const r = await fetch(`${service.url}${path}`, { ...init, method });
    const contentType = (r.headers.get("content-type") ?? "").split(";")[0] ?? "";
    const text = await r.text();
    const body = contentType === "application/json" ? JSON.parse(text) : text;
    const observed: ObservedResponse = { method, path: template, status: r.status, contentType, body };
    // A 204 has no body and no media type: only its status is documented.
    if (r.status !== 204) findings.push(...check(observed));
    return { status: r.status, body, text };
  };
  return { doc, call, findings };
}

describe("OpenAPI documents against real services", () => {
  let stack: Stack;
  let work: string;
  let dataset: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-openapi-"));
    const fixture = await buildTrainingFixture(work);
    dataset = fixture.dataset;
    stack = await startStack({
      generators: 1,
      generatorEnv: { GENERATOR_MODEL_DIR: fixture.modelDir, GENERATOR_BASE_CONFIG: "" },
      trainerEnv: { TRAINER_MODEL_DIR: fixture.modelDir, TRAINER_THREADS: "1" },
    });
  });
  after(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("trainer: /openapi.json is valid OpenAPI 3.1 and its routes answer as documented", async () => {
    const { doc, call, findings } = await documented(stack.trainer);
    assert.deepEqual(await openApi31Findings(doc), []);

    assert.equal((await call("GET", "/healthz")).status, 200);
    assert.equal((await call("GET", "/metrics")).status, 200);
    assert.equal((await call("GET", "/v1/runs")).status, 401);
    const post = (body: unknown) => ({ headers: { ...auth, ...json }, body: JSON.stringify(body) });
    assert.equal((await call("POST", "/v1/runs", "/v1/runs", post({ run: RUN }))).status, 400);
    assert.equal((await call("POST", "/v1/runs", "/v1/runs", post(grpoRun(RUN, dataset, 2)))).status, 201);
    assert.equal((await call("GET", "/v1/runs", "/v1/runs", { headers: auth })).status, 200);

    // The run's events, streamed until it ends: each one's data is a documented RunStreamEvent.
    const events = await call("GET", "/v1/runs/{id}/events", `/v1/runs/${RUN}/events`);
    assert.equal(events.status, 200);
    const checkEvent = componentChecker(doc, "RunStreamEvent");
    const data = events.text
      .split("\n")
      .filter((l) => l.startsWith("data:"))
      .map((l) => JSON.parse(l.slice(5)) as { type: string });
    assert.ok(data.some((e) => e.type === "published") && data.at(-1)?.type === "status", events.text);
    for (const e of data) findings.push(...checkEvent(e));
    const badId = { headers: { "last-event-id": "x" } };
    assert.equal((await call("GET", "/v1/runs/{id}/events", `/v1/runs/${RUN}/events`, badId)).status, 400);

    assert.equal((await call("GET", "/v1/runs/{id}", `/v1/runs/${RUN}`, { headers: auth })).status, 200);
    assert.equal((await call("GET", "/v1/runs/{id}", "/v1/runs/nope", { headers: auth })).status, 404);
    const cancel = await call("POST", "/v1/runs/{id}/cancel", `/v1/runs/${RUN}/cancel`, { headers: auth });
    assert.equal(cancel.status, 409, "a completed run cannot be cancelled");
    assert.equal((await call("GET", "/v1/runs/{run}/versions", `/v1/runs/${RUN}/versions`)).status, 200);
    const rollback = await call(
      "POST",
      "/v1/runs/{run}/rollback",
      `/v1/runs/${RUN}/rollback`,
      post({ version: 1 }),
    );
    assert.equal(rollback.status, 200);
    const form = new FormData();
    form.set("adapter_config.json", new Blob(["{}"]), "adapter_config.json");
    const upload = await call("POST", "/v1/runs/{run}/adapters", `/v1/runs/${RUN}/adapters`, {
      headers: auth,
      body: form,
    });
    assert.equal(upload.status, 400, "an upload without the weights");

    assert.equal(
      (await call("GET", "/v1/subscriptions", "/v1/subscriptions", { headers: auth })).status,
      200,
    );
    assert.equal(
      (await call("POST", "/v1/subscriptions", "/v1/subscriptions", post({ url: 1 }))).status,
      400,
    );
    const added = await call(
      "POST",
      "/v1/subscriptions",
      "/v1/subscriptions",
      post({ url: "http://127.0.0.1:9/h" }),
    );
    assert.equal(added.status, 201);
    const remove = `/v1/subscriptions/${(added.body as { id: string }).id}`;
    assert.equal((await call("DELETE", "/v1/subscriptions/{id}", remove, { headers: auth })).status, 204);
    assert.equal((await call("DELETE", "/v1/subscriptions/{id}", remove, { headers: auth })).status, 404);

    assert.deepEqual(findings, []);
  });

  it("generator: /openapi.json is valid OpenAPI 3.1 and its routes answer as documented", async () => {
    const g = stack.generators[0] as Service;
    // After the rollback of the trainer's test, version 1 is the run's active version.
    await stack.waitActive(g, RUN, 1, 60_000);
    const { doc, call, findings } = await documented(g);
    assert.deepEqual(await openApi31Findings(doc), []);
    const post = (body: unknown) => ({ headers: json, body: JSON.stringify(body) });

    for (const path of ["/healthz", "/readyz", "/metrics", "/v1/models", "/v1/adapters"])
      assert.equal((await call("GET", path)).status, 200, path);
    assert.equal((await call("GET", "/v1/models/{id}", `/v1/models/${RUN}`)).status, 200);
    assert.equal((await call("GET", "/v1/models/{id}", "/v1/models/nope")).status, 404);

    const completion = { model: RUN, prompt: "q5:", max_tokens: 4 };
    assert.equal((await call("POST", "/v1/completions", "/v1/completions", post(completion))).status, 200);
    const streamed = await call(
      "POST",
      "/v1/completions",
      "/v1/completions",
      post({ ...completion, stream: true }),
    );
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /data: \[DONE\]/);
    const chat = { model: RUN, messages: [{ role: "user", content: "q5:" }], max_tokens: 4 };
    assert.equal(
      (await call("POST", "/v1/chat/completions", "/v1/chat/completions", post(chat))).status,
      200,
    );
    const refused = post({ ...chat, tools: [{ type: "function" }] });
    assert.equal((await call("POST", "/v1/chat/completions", "/v1/chat/completions", refused)).status, 400);
    const unknownModel = post({ ...completion, model: "nope" });
    assert.equal((await call("POST", "/v1/completions", "/v1/completions", unknownModel)).status, 404);

    const load = post({ lora_name: "policy", lora_path: `${RUN}@1` });
    assert.equal((await call("POST", "/v1/load_lora_adapter", "/v1/load_lora_adapter", load)).status, 200);
    const unload = (name: string) => post({ lora_name: name });
    assert.equal(
      (await call("POST", "/v1/unload_lora_adapter", "/v1/unload_lora_adapter", unload("policy"))).status,
      200,
    );
    assert.equal(
      (await call("POST", "/v1/unload_lora_adapter", "/v1/unload_lora_adapter", unload("policy"))).status,
      404,
    );

    // A signed event of a run nobody published: accepted (202); the same id again is a replay (401).
    const event = JSON.stringify({
      type: "adapter.published",
      run: "openapi-none",
      version: 1,
      manifestKey: "runs/openapi-none/versions/1/manifest.json",
      manifestSha256: "0".repeat(64),
    });
    const headers = {
      ...json,
      ...signWebhook({ secret: SECRET, id: "msg_openapi", clock: systemClock, body: event }),
    };
    const hook = () =>
      call("POST", "/v1/webhooks/adapters", "/v1/webhooks/adapters", { headers, body: event });
    assert.equal((await hook()).status, 202);
    assert.equal((await hook()).status, 401);

    assert.deepEqual(findings, []);
  });
});
