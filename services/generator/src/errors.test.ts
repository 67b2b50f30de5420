import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GENERATOR_ERROR_CODES, generatorErrorBodySchema } from "@loracast/shared/generator-api";
import { requestId } from "@loracast/shared/platform";
import { Hono } from "hono";
import { errorResponse } from "./errors.ts";
import type { GeneratorEnv } from "./routes/types.ts";

describe("the generator's error envelope", () => {
  it("is generatorErrorBodySchema for every code, with OpenAI's error type for its status", async () => {
    const a = new Hono<GeneratorEnv>();
    a.use(
      "*",
      requestId(() => "req-1"),
    );
    for (const code of GENERATOR_ERROR_CODES)
      a.get(`/${code}`, (c) => errorResponse(c, code, "nope", "model"));
    // OpenAI's types: 401 authentication, 403 permission, 5xx server, any other 4xx invalid request.
    const expectedType: Partial<Record<string, string>> = {
      unauthorized: "authentication_error",
      forbidden: "permission_error",
      adapter_held: "server_error",
      internal: "server_error",
      adapter_revoked: "invalid_request_error",
      model_not_found: "invalid_request_error",
    };
    for (const code of GENERATOR_ERROR_CODES) {
      const res = await a.request(`/${code}`);
      assert.ok(res.status >= 400 && res.status < 600, `${code}: ${res.status}`);
      const { error } = generatorErrorBodySchema.parse(await res.json());
      assert.deepEqual([error.code, error.param, error.requestId], [code, "model", "req-1"]);
      assert.equal(error.type, expectedType[code] ?? error.type, code);
      assert.equal(error.type === "server_error", res.status >= 500, `${code}: ${res.status} ${error.type}`);
    }
  });
});
