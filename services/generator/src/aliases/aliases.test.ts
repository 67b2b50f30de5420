import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideAdmin, isLoopbackHost } from "./admin-policy.ts";
import { parseLoraPath } from "./lora-path.ts";

const TOKEN = "admin-token-0123456789abcdef";

describe("admin policy", () => {
  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
      assert.equal(isLoopbackHost(h), true, h);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1"])
      assert.equal(isLoopbackHost(h), false, h);
  });

  it("without a token: open on loopback, 403 naming GENERATOR_ADMIN_TOKEN elsewhere", () => {
    assert.deepEqual(decideAdmin(undefined, "127.0.0.1", undefined), { allowed: true });
    const d = decideAdmin(undefined, "0.0.0.0", `Bearer ${TOKEN}`);
    assert.equal(d.allowed, false);
    assert.ok(!d.allowed && d.status === 403 && /GENERATOR_ADMIN_TOKEN/.test(d.message));
  });

  it("with a token: 401 without a bearer, 403 for another token, allowed for the token, on any bind", () => {
    for (const host of ["127.0.0.1", "0.0.0.0"]) {
      assert.equal(decideAdmin(TOKEN, host, undefined).allowed, false);
      assert.ok(!decideAdmin(TOKEN, host, "Basic abc").allowed);
      const missing = decideAdmin(TOKEN, host, undefined);
      assert.ok(!missing.allowed && missing.status === 401);
      const wrong = decideAdmin(TOKEN, host, `Bearer ${TOKEN}x`);
      assert.ok(!wrong.allowed && wrong.status === 403);
      assert.deepEqual(decideAdmin(TOKEN, host, `Bearer ${TOKEN}`), { allowed: true });
    }
  });
});

describe("lora_path", () => {
  const store = { bucket: "b", prefix: "team/loracast" };
  it("parses every form", () => {
    assert.deepEqual(parseLoraPath("run-1@12", store), {
      ok: true,
      value: { kind: "version", run: "run-1", version: 12 },
    });
    assert.deepEqual(parseLoraPath("run-1", store), { ok: true, value: { kind: "run", run: "run-1" } });
    assert.deepEqual(parseLoraPath("s3://b/team/loracast/runs/r/versions/000000000007.json", store), {
      ok: true,
      value: { kind: "version", run: "r", version: 7 },
    });
    assert.deepEqual(parseLoraPath("/srv/adapters/x", store), {
      ok: true,
      value: { kind: "local", path: "/srv/adapters/x" },
    });
    assert.deepEqual(parseLoraPath("s3://b/runs/r/versions/000000000007.json", { bucket: "b", prefix: "" }), {
      ok: true,
      value: { kind: "version", run: "r", version: 7 },
    });
  });

  it("refuses other buckets, other prefixes, other keys and malformed names", () => {
    for (const p of [
      "s3://other/team/loracast/runs/r/versions/000000000007.json",
      "s3://b/elsewhere/runs/r/versions/000000000007.json",
      "s3://b/team/loracast/runs/r/checkpoints/000000000007.safetensors",
      "s3://b/team/loracast/runs/r/versions/7.json",
      "s3://b/team/loracast/runs/r/versions/000000000000.json",
      "s3://b",
      "run@0",
      "bad name",
      "r@1@2",
    ])
      assert.equal(parseLoraPath(p, store).ok, false, p);
  });
});
