/** Documents from route lists, and error responses from a status table. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { errorResponses, jsonResponse, openApiDocument } from "./index.ts";

describe("openApiDocument", () => {
  const statusOf = { bad: 400, missing: 404, also_bad: 400 } as const;
  const envelope = z.object({ error: z.string() }).meta({ id: "Err" });
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
          200: jsonResponse("A thing", z.object({ n: z.number().int() })),
          ...errorResponses(["missing", "bad", "also_bad"], statusOf, envelope),
        },
      },
    ],
    components: [z.object({ e: z.string() }).meta({ id: "Event" })],
  });

  it("lists the routes given and the components named", () => {
    assert.equal(doc.openapi, "3.1.0");
    assert.deepEqual(Object.keys(doc.paths ?? {}), ["/things/{id}"]);
    assert.deepEqual(Object.keys(doc.paths?.["/things/{id}"] ?? {}), ["get"]);
    assert.deepEqual(Object.keys(doc.components?.schemas ?? {}).sort(), ["Err", "Event"]);
  });

  it("groups error codes by their status, naming them", () => {
    const responses = doc.paths?.["/things/{id}"]?.get?.responses ?? {};
    assert.deepEqual(Object.keys(responses).sort(), ["200", "400", "404"]);
    assert.equal(responses["400"]?.description, "Error: `bad`, `also_bad`");
    assert.deepEqual(responses["404"]?.content?.["application/json"]?.schema, {
      $ref: "#/components/schemas/Err",
    });
  });
});
