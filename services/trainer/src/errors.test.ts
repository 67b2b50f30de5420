import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { requestId } from "@loracast/shared/platform";
import { TRAINER_ERROR_CODES, trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { Hono } from "hono";
import { errorResponse } from "./errors.ts";
import type { TrainerEnv } from "./routes/types.ts";

/** An app answering `errorResponse(code, message)` at `/<code>`, with request ids `req-1`, `req-2`, …. */
function app(message: string): Hono<TrainerEnv> {
  let n = 0;
  const a = new Hono<TrainerEnv>();
  a.use(
    "*",
    requestId(() => `req-${++n}`),
  );
  for (const code of TRAINER_ERROR_CODES) a.get(`/${code}`, (c) => errorResponse(c, code, message));
  return a;
}

describe("the trainer's error envelope", () => {
  it("is trainerErrorBodySchema for every code, with the request id and a 4xx/5xx status", async () => {
    const a = app("nope");
    for (const code of TRAINER_ERROR_CODES) {
      const res = await a.request(`/${code}`);
      assert.ok(res.status >= 400 && res.status < 600, `${code}: ${res.status}`);
      const body = trainerErrorBodySchema.parse(await res.json());
      assert.equal(body.error.code, code);
      assert.equal(body.error.requestId, res.headers.get("x-request-id"));
    }
  });

  it("redacts credentials in the message", async () => {
    const res = await app("reward http://user:secret@host/x failed").request("/reward_failed");
    assert.equal(res.status, 502);
    const { error } = trainerErrorBodySchema.parse(await res.json());
    assert.doesNotMatch(error.message, /secret/);
  });
});
