/**
 * Run names are checked on every trainer path that takes one, with the one shared rule (issue 15,
 * item 7), on real processes: the embedded S3 server and a trainer. A name that is not a run name
 * (uppercase, `.`, an encoded `/` or NUL) gets 400 naming `run`, and nothing under that name, or
 * anything else, reaches the bucket.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fixtureAdapter } from "../helpers/adapters.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

const BAD = ["BAD_NAME", "a..b", "x.y", encodeURIComponent("runs/../../x"), "a%00b", "-lead", "a".repeat(64)];

describe("run names are checked with one rule on every trainer path", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  it("answers 400 naming `run` for uploads, versions and rollbacks, and writes nothing", async () => {
    const files = fixtureAdapter("llama-tiny");
    for (const name of BAD) {
      const answers = [
        await stack.publish(name, files),
        await fetch(`${stack.trainer.url}/v1/runs/${name}/versions`),
        await fetch(`${stack.trainer.url}/v1/runs/${name}/rollback`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ version: 1 }),
        }),
      ];
      for (const res of answers) {
        const text = await res.text();
        assert.equal(res.status, 400, `${name}: ${text}`);
        assert.match(text, /"message":"run: run names are lowercase letters, digits and dashes/, name);
      }
    }
    const stored = readdirSync(stack.s3.dir, { recursive: true }).map(String);
    assert.deepEqual(
      stored.filter((p) => p.includes("versions") || p.includes("blobs")),
      [],
      "no version or blob was stored",
    );
    const ok = await stack.publish("good-name-1", files);
    assert.equal(ok.status, 201, "a valid name still publishes");
    const after = readdirSync(stack.s3.dir, { recursive: true }).map(String);
    assert.ok(
      after.some((p) => p.includes("good-name-1") && p.includes("versions")),
      "the listing sees what a publish stores",
    );
  });
});
