import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VersionRecord } from "../lifecycle/index.ts";
import { decideAdmin, isLoopbackHost } from "./admin-policy.ts";
import { parseLoraPath } from "./lora-path.ts";
import { AliasRegistry } from "./registry.ts";

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

describe("alias registry", () => {
  const record = (version: number, bytes = 100) =>
    ({ run: "r", version, pins: 0, bytes, adapter: null }) as unknown as VersionRecord;
  /** A cache of `maxBytes` in which `active` versions are active; `outside` counts held local bytes. */
  const memory = (maxBytes = 1e9, active: VersionRecord[] = []) => {
    const m = {
      outside: 0,
      maxBytes,
      pin: (r: VersionRecord) => {
        r.pins++;
        return () => {
          r.pins--;
        };
      },
      hold: (bytes: number) => {
        m.outside += bytes;
        return () => {
          m.outside -= bytes;
        };
      },
      versionBytesHeld: (pinned: Iterable<VersionRecord>) =>
        [...new Set([...active, ...pinned])].reduce((n, r) => n + (r.bytes ?? 0), 0),
    };
    return m;
  };
  const local = (bytes: number) => ({ path: `/l/${bytes}`, sha256: "0".repeat(64), feeds: null, bytes });

  it("replaces a name in one step: the new version pinned, then the old one released", () => {
    const registry = new AliasRegistry(memory(), 2);
    const [v1, v2] = [record(1), record(2)];
    assert.deepEqual(registry.set("p", { kind: "store", record: v1 }, 0), {
      ok: true,
      value: { replaced: false },
    });
    assert.deepEqual([v1.pins, v2.pins], [1, 0]);
    assert.deepEqual(registry.set("p", { kind: "store", record: v2 }, 1), {
      ok: true,
      value: { replaced: true },
    });
    assert.deepEqual([v1.pins, v2.pins], [0, 1]);
    const now = registry.get("p")?.target;
    assert.ok(now?.kind === "store" && now.record === v2);
    assert.equal(registry.remove("p"), true);
    assert.equal(registry.remove("p"), false);
    assert.deepEqual([v1.pins, v2.pins], [0, 0]);
  });

  it("refuses a new name past its bound, but still replaces a loaded one", () => {
    const registry = new AliasRegistry(memory(), 1);
    const [v1, v2] = [record(1), record(2)];
    assert.equal(registry.set("a", { kind: "store", record: v1 }, 0).ok, true);
    assert.deepEqual(registry.set("b", { kind: "store", record: v2 }, 0), {
      ok: false,
      error: {
        code: "full",
        message:
          "1 LoRA adapters are loaded, the most this generator holds (GENERATOR_MAX_LORA_ALIASES); unload one first",
        max: 1,
      },
    });
    assert.equal(v2.pins, 0, "a refused name pins nothing");
    assert.equal(registry.set("a", { kind: "store", record: v2 }, 0).ok, true);
    assert.deepEqual([v1.pins, v2.pins], [0, 1]);
  });

  it("refuses a load whose weights would take what no eviction frees past the byte bound", () => {
    const active = record(9, 100);
    const m = memory(290, [active]);
    const registry = new AliasRegistry(m, 64);
    const [v1, v2, v3] = [record(1), record(2), record(3, 50)];
    assert.equal(registry.set("a", { kind: "store", record: v1 }, 0).ok, true);
    assert.equal(
      registry.set("b", { kind: "store", record: v1 }, 0).ok,
      true,
      "a version already held adds 0",
    );
    assert.equal(
      registry.set("c", { kind: "store", record: active }, 0).ok,
      true,
      "the active version adds 0",
    );
    assert.equal(registry.heldBytes(), 200);
    assert.deepEqual(registry.set("d", { kind: "store", record: v2 }, 0), {
      ok: false,
      error: {
        code: "bytes",
        message:
          "The lora adapter 'd' needs 100 more bytes of adapter memory, and the active versions and loaded " +
          "LoRA adapters hold 200 of the 290 bytes CACHE_MAX_MB allows; " +
          "unload an adapter first (POST /v1/unload_lora_adapter) or raise CACHE_MAX_MB",
        needed: 100,
        held: 200,
        maxBytes: 290,
      },
    });
    assert.equal(v2.pins, 0, "a refused load pins nothing");
    assert.equal(registry.set("d", { kind: "store", record: v3 }, 0).ok, true, "50 more bytes fit");
    assert.equal(registry.set("e", { kind: "local", adapter: local(60) }, 0).ok, false, "local bytes count");
    assert.equal(m.outside, 0);
    // Replacing d (50) with a local 50-byte directory adds nothing.
    assert.equal(registry.set("d", { kind: "local", adapter: local(50) }, 0).ok, true);
    assert.deepEqual([v3.pins, m.outside], [0, 50]);
    // Moving a from v1 to v2 frees nothing, as b still holds v1: refused, and a still names v1.
    const moved = registry.set("a", { kind: "store", record: v2 }, 0);
    assert.deepEqual(moved.ok ? null : { ...moved.error, message: undefined }, {
      code: "bytes",
      message: undefined,
      needed: 100,
      held: 250,
      maxBytes: 290,
    });
    const a = registry.get("a")?.target;
    assert.ok(a?.kind === "store" && a.record === v1);
    assert.equal(registry.remove("b"), true);
    assert.equal(registry.set("a", { kind: "store", record: v2 }, 0).ok, true, "v1 is released with it");
    assert.deepEqual([v1.pins, v2.pins, registry.heldBytes()], [0, 1, 250]);
    assert.deepEqual([...registry.refusals], [["bytes", 3]]);
  });
});
