/** The HTTP edge of the trainer's errors: each code's status and the one redacted envelope. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hono } from "hono";
import type { TrainerErrorCode } from "./errors.ts";
import { errorResponse } from "./http-errors.ts";

async function answer(code: TrainerErrorCode, message: string) {
  const app = new Hono();
  app.get("/", (c) => errorResponse(c, code, message));
  const res = await app.request("/");
  return { status: res.status, body: (await res.json()) as { error: Record<string, unknown> } };
}

describe("errorResponse", () => {
  it("answers each code with its status in the {error: {code, message, requestId}} envelope", async () => {
    const want: [TrainerErrorCode, number][] = [
      ["bad_request", 400],
      ["invalid_config", 400],
      ["unauthorized", 401],
      ["not_found", 404],
      ["conflict", 409],
      ["payload_too_large", 413],
      ["store_unavailable", 503],
      ["non_finite", 500],
      ["internal", 500],
    ];
    for (const [code, status] of want) {
      const r = await answer(code, "why");
      assert.equal(r.status, status, code);
      assert.deepEqual(r.body, { error: { code, message: "why", requestId: null } });
    }
  });

  it("redacts credentials a message echoes from a configured URL", async () => {
    const r = await answer("invalid_config", "rewards.0.url: https://user:hunter2@reward.example/score");
    assert.doesNotMatch(String(r.body.error.message), /hunter2/);
  });
});
