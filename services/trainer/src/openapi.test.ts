/**
 * The trainer's OpenAPI document against the app it describes: valid OpenAPI 3.1, the same
 * operations as the Hono app's route table, and the same public routes as the auth middleware.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertDocumentsApp, documentRouteTable } from "@loracast/dev-support/openapi";
import { createMetricsRegistry } from "@loracast/shared/platform";
import { type AppDeps, createApp, isPublic } from "./app.ts";
import { TrainerMetrics } from "./metrics.ts";
import { trainerOpenApi } from "./openapi.ts";

const TOKEN = "openapi-test-token";
/**
 * Building the app reads only the token and the metrics registry: the routes hold their
 * dependencies until a request comes, and these tests send none that passes the auth middleware to
 * a handler.
 */
const app = () =>
  createApp({
    apiToken: TOKEN,
    metrics: new TrainerMetrics(createMetricsRegistry({ processMetrics: false })),
  } as AppDeps);
/** `/v1/runs/{id}` with each parameter filled in, as a request names it. */
const concrete = (path: string) => path.replace(/\{\w+\}/g, "r1");

describe("trainer OpenAPI document", () => {
  const doc = trainerOpenApi();

  it("is valid OpenAPI 3.1, lists exactly the app's routes, and is served at /openapi.json without a token", async () => {
    await assertDocumentsApp(doc, app());
  });

  it("marks public exactly the routes the auth middleware lets through, and the others answer 401", async () => {
    const a = app();
    for (const op of documentRouteTable(doc)) {
      const [method, path] = op.split(" ") as [string, string];
      const item = doc.paths?.[path]?.[method.toLowerCase() as "get"];
      const documentedPublic = item?.security !== undefined && item.security.length === 0;
      assert.equal(documentedPublic, isPublic(method, concrete(path)), op);
      if (!documentedPublic) {
        const res = await a.request(concrete(path), { method });
        assert.equal(res.status, 401, op);
        assert.ok(item?.responses?.["401"] !== undefined, `${op}: 401 is not documented`);
      }
    }
  });

  it("documents each error status with the error envelope", () => {
    const upload = doc.paths?.["/v1/runs/{run}/adapters"]?.post?.responses ?? {};
    assert.deepEqual(Object.keys(upload).sort(), ["201", "400", "401", "404", "409", "413", "500", "503"]);
    assert.deepEqual(upload["413"]?.content?.["application/json"]?.schema, {
      $ref: "#/components/schemas/TrainerError",
    });
  });
});
