/**
 * The OpenAPI documents of real services, over loopback HTTP: the embedded S3 server, a trainer
 * with the demo base and a generator serving it. Each service's `GET /openapi.json` is valid
 * OpenAPI 3.1, and real responses of its routes (successes, errors and streams) match the
 * document's schemas for their status and media type: what the documents promise is what the
 * services answer.
 */
import assert from "node:assert/strict";
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
import { SECRET, type Stack, TOKEN } from "../helpers/stack.ts";
import { grpoRun, startTrainingStack, type TrainingStack } from "../helpers/training.ts";

const RUN = "openapi-1";
const auth = { authorization: `Bearer ${TOKEN}` };
const json = { "content-type": "application/json" };

/**
 * A service's document and a client that checks every answer against it: `call(status, method,
 * template, path, init)` requests `path` (the OpenAPI path `template` filled in; the template itself
 * by default), asserts the status, checks the answer against the document and returns its body.
 */
async function documented(service: Service) {
  const res = await fetch(`${service.url}/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as object;
  const check = responseChecker(doc);
  const findings: string[] = [];
  const call = async (
    status: number,
    method: string,
    template: string,
    path = template,
    init: RequestInit = {},
  ) => {
    const r = await fetch(`${service.url}${path}`, { ...init, method });
    const contentType = (r.headers.get("content-type") ?? "").split(";")[0] ?? "";
    const text = await r.text();
    const body: unknown = contentType === "application/json" ? JSON.parse(text) : text;
    assert.equal(r.status, status, `${method} ${path}: ${text.slice(0, 500)}`);
    const observed: ObservedResponse = { method, path: template, status: r.status, contentType, body };
    findings.push(...check(observed));
    return { body, text };
  };
  return { doc, call, findings };
}

describe("OpenAPI documents against real services", () => {
  let stack: Stack;
  let dataset: string;
  let training: TrainingStack | undefined;

  before(async () => {
    training = await startTrainingStack("loracast-openapi-", 1);
    ({ stack, dataset } = training);
  });
  after(async () => {
    await training?.stop();
  });

  it("trainer: /openapi.json is valid OpenAPI 3.1 and its routes answer as documented", async () => {
    const { doc, call, findings } = await documented(stack.trainer);
    assert.deepEqual(await openApi31Findings(doc), []);
    const withToken = { headers: auth };
    const post = (body: unknown) => ({ headers: { ...auth, ...json }, body: JSON.stringify(body) });
    const run = `/v1/runs/${RUN}`;

    await call(200, "GET", "/healthz");
    await call(200, "GET", "/metrics");
    await call(302, "GET", "/", "/", { redirect: "manual" });
    await call(200, "GET", "/dashboard");
    for (const name of ["dashboard.js", "uplot.css"])
      await call(200, "GET", "/dashboard/assets/{name}", `/dashboard/assets/${name}`);
    await call(404, "GET", "/dashboard/assets/{name}", "/dashboard/assets/nope.js");
    await call(401, "GET", "/v1/runs");
    await call(400, "POST", "/v1/runs", "/v1/runs", post({ run: RUN }));
    await call(201, "POST", "/v1/runs", "/v1/runs", post(grpoRun(RUN, dataset, 2)));
    await call(200, "GET", "/v1/runs", "/v1/runs", withToken);

    // The run's events, streamed until it ends: each one's data is a documented RunStreamEvent.
    const events = await call(200, "GET", "/v1/runs/{id}/events", `${run}/events`);
    const checkEvent = componentChecker(doc, "RunStreamEvent");
    const data = events.text
      .split("\n")
      .filter((l) => l.startsWith("data:"))
      .map((l) => JSON.parse(l.slice(5)) as { type: string });
    assert.ok(data.some((e) => e.type === "published") && data.at(-1)?.type === "status", events.text);
    for (const e of data) findings.push(...checkEvent(e));
    await call(400, "GET", "/v1/runs/{id}/events", `${run}/events`, { headers: { "last-event-id": "x" } });

    await call(200, "GET", "/v1/runs/{id}", run, withToken);
    await call(404, "GET", "/v1/runs/{id}", "/v1/runs/nope", withToken);
    // A completed run cannot be cancelled.
    await call(409, "POST", "/v1/runs/{id}/cancel", `${run}/cancel`, withToken);
    await call(200, "GET", "/v1/runs/{run}/versions", `${run}/versions`);
    await call(200, "POST", "/v1/runs/{run}/rollback", `${run}/rollback`, post({ version: 1 }));
    const form = new FormData();
    form.set("adapter_config.json", new Blob(["{}"]), "adapter_config.json");
    // An upload without the weights.
    await call(400, "POST", "/v1/runs/{run}/adapters", `${run}/adapters`, { ...withToken, body: form });

    await call(200, "GET", "/v1/fleet", `/v1/fleet?run=${RUN}`, withToken);
    await call(400, "GET", "/v1/fleet", "/v1/fleet?run=Not_A_Run", withToken);
    await call(200, "GET", "/v1/subscriptions", "/v1/subscriptions", withToken);
    await call(400, "POST", "/v1/subscriptions", "/v1/subscriptions", post({ url: 1 }));
    const added = await call(
      201,
      "POST",
      "/v1/subscriptions",
      "/v1/subscriptions",
      post({ url: "http://127.0.0.1:9/h" }),
    );
    const remove = `/v1/subscriptions/${(added.body as { id: string }).id}`;
    await call(204, "DELETE", "/v1/subscriptions/{id}", remove, withToken);
    await call(404, "DELETE", "/v1/subscriptions/{id}", remove, withToken);

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
      await call(200, "GET", path);
    await call(200, "GET", "/v1/models/{id}", `/v1/models/${RUN}`);
    await call(404, "GET", "/v1/models/{id}", "/v1/models/nope");

    const completions = (status: number, body: unknown) =>
      call(status, "POST", "/v1/completions", undefined, post(body));
    const chat = (status: number, body: unknown) =>
      call(status, "POST", "/v1/chat/completions", undefined, post(body));
    const completion = { model: RUN, prompt: "q5:", max_tokens: 4 };
    await completions(200, completion);
    assert.match((await completions(200, { ...completion, stream: true })).text, /data: \[DONE\]/);
    await completions(404, { ...completion, model: "nope" });
    const messages = { model: RUN, messages: [{ role: "user", content: "q5:" }], max_tokens: 4 };
    await chat(200, messages);
    await chat(400, { ...messages, tools: [{ type: "function" }] });

    const admin = (status: number, path: string, body: unknown) =>
      call(status, "POST", path, undefined, post(body));
    await admin(200, "/v1/load_lora_adapter", { lora_name: "policy", lora_path: `${RUN}@1` });
    await admin(200, "/v1/unload_lora_adapter", { lora_name: "policy" });
    await admin(404, "/v1/unload_lora_adapter", { lora_name: "policy" });

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
    for (const status of [202, 401])
      await call(status, "POST", "/v1/webhooks/adapters", undefined, { headers, body: event });

    assert.deepEqual(findings, []);
  });
});
