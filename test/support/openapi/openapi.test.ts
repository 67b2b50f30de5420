/** The route tables the OpenAPI checks compare, and the response checker. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { errorResponses, jsonResponse, openApiDocument } from "@loracast/shared/openapi";
import { Hono } from "hono";
import { z } from "zod";
import { documentRouteTable, honoRouteTable, responseChecker } from "./index.ts";

describe("honoRouteTable", () => {
  it("lists operations in OpenAPI path syntax, without middleware, once each", () => {
    const app = new Hono();
    app.use("*", async (_c, next) => next());
    app.get("/v1/models/:id{.+}", (c) => c.text(""));
    app.get("/v1/runs/:id/events", (c) => c.text(""));
    app.post("/v1/runs/:id/events", (c) => c.text(""));
    const sub = new Hono();
    sub.use("/v1/x", async (_c, next) => next());
    sub.delete("/v1/x", (c) => c.text(""));
    app.route("/", sub);
    assert.deepEqual(honoRouteTable(app), [
      "DELETE /v1/x",
      "GET /v1/models/{id}",
      "GET /v1/runs/{id}/events",
      "POST /v1/runs/{id}/events",
    ]);
  });
});

describe("documentRouteTable and responseChecker", () => {
  const envelope = z.object({ error: z.object({ code: z.string() }) }).meta({ id: "Err" });
  const doc = openApiDocument({
    title: "t",
    version: "1",
    description: "d",
    routes: [
      {
        method: "get",
        path: "/things/{id}",
        request: { params: z.object({ id: z.string() }) },
        responses: {
          200: jsonResponse("A thing", z.object({ n: z.number().int(), at: z.iso.datetime() })),
          ...errorResponses(["missing"], { missing: 404 }, envelope),
        },
      },
      { method: "delete", path: "/things/{id}", responses: { 204: { description: "Gone" } } },
    ],
  });
  const check = responseChecker(doc);
  const get = { method: "GET", path: "/things/{id}", contentType: "application/json" };

  it("lists the document's operations", () => {
    assert.deepEqual(documentRouteTable(doc), ["DELETE /things/{id}", "GET /things/{id}"]);
  });

  it("accepts bodies that match, $refs and formats included", () => {
    assert.deepEqual(check({ ...get, status: 200, body: { n: 1, at: "2026-01-01T00:00:00Z" } }), []);
    assert.deepEqual(check({ ...get, status: 404, body: { error: { code: "missing" } } }), []);
  });

  it("names what does not match, and what the document does not list", () => {
    assert.match(
      check({ ...get, status: 200, body: { n: 1.5, at: "2026-01-01T00:00:00Z" } }).join(),
      /\/n must be integer/,
    );
    assert.match(
      check({ ...get, status: 200, body: { n: 1, at: "yesterday" } }).join(),
      /\/at must match format/,
    );
    assert.match(
      check({ ...get, status: 404, body: { error: {} } }).join(),
      /must have required property 'code'/,
    );
    assert.match(check({ ...get, status: 500, body: {} }).join(), /status 500 is not documented/);
    assert.match(check({ ...get, path: "/other", status: 200, body: {} }).join(), /no such operation/);
    assert.match(
      check({ ...get, status: 200, contentType: "text/plain", body: "" }).join(),
      /media type not documented/,
    );
  });
});
