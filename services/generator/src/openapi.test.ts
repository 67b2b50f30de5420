/**
 * The generator's OpenAPI document against the app it describes: valid OpenAPI 3.1, the same
 * operations as the Hono app's route table, served at /openapi.json.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertDocumentsApp } from "@loracast/dev-support/openapi";
import { createMetricsRegistry } from "@loracast/shared/platform";
import { type AppDeps, createApp } from "./app.ts";
import { GeneratorMetrics } from "./metrics.ts";
import { generatorOpenApi } from "./openapi.ts";

/**
 * Building the app reads only the clock, the engine (none), the store's refusal log and the metrics
 * registry: the routes
 * hold the rest until a request comes, and these tests send none but `GET /openapi.json`.
 */
const app = () =>
  createApp({
    clock: { now: () => 0 },
    inference: null,
    store: { refusals: null },
    admin: {},
    metrics: new GeneratorMetrics(createMetricsRegistry({ processMetrics: false })),
  } as unknown as AppDeps);

describe("generator OpenAPI document", () => {
  const doc = generatorOpenApi();

  it("is valid OpenAPI 3.1, lists exactly the app's routes, and is served at /openapi.json", async () => {
    await assertDocumentsApp(doc, app());
  });

  it("documents streaming as text/event-stream and errors in OpenAI's envelope", () => {
    const chat = doc.paths?.["/v1/chat/completions"]?.post?.responses ?? {};
    assert.deepEqual(Object.keys(chat["200"]?.content ?? {}).sort(), [
      "application/json",
      "text/event-stream",
    ]);
    assert.deepEqual(Object.keys(chat).sort(), ["200", "400", "404", "410", "413", "422", "500", "503"]);
    const schema = doc.components?.schemas?.GeneratorError as {
      properties?: { error?: { required?: string[] } };
    };
    assert.deepEqual(schema.properties?.error?.required, ["code", "message", "type", "param", "requestId"]);
  });
});
