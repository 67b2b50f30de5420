import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../platform/index.ts";
import { StoreError } from "./object-store.ts";
import { waitForStore } from "./startup.ts";

const target = { endpoint: "http://127.0.0.1:9", bucket: "models" };

/** A probe that fails with `errors` in turn, then answers `value`; counts its calls. */
function probe(errors: StoreError[], value = "ok") {
  const p = {
    calls: 0,
    run: async () => {
      const e = errors[p.calls++];
      if (e !== undefined) throw e;
      return value;
    },
  };
  return p;
}

function logs() {
  const lines: { level: string; msg: string; variable?: string }[] = [];
  return { lines, log: createLogger({}, { write: (l) => lines.push(JSON.parse(l)) }) };
}

const refused = () => new StoreError("unavailable", "connect ECONNREFUSED", { reason: "ECONNREFUSED" });
const rejected = (reason: string) => new StoreError("rejected", `${reason}: no`, { reason });

describe("waitForStore", () => {
  it("retries an outage, one warning per failed attempt naming S3_ENDPOINT, then returns the probe's value", async () => {
    const p = probe([refused(), refused()], "conditional");
    const { lines, log } = logs();
    const r = await waitForStore({ probe: p.run, target, log, timeoutMs: 10_000, minDelayMs: 5 });
    assert.deepEqual(r, { ok: true, value: "conditional" });
    assert.equal(p.calls, 3);
    assert.equal(lines.length, 2);
    for (const l of lines) {
      assert.equal(l.level, "warn");
      assert.equal(l.variable, "S3_ENDPOINT");
      assert.match(l.msg, /^S3_ENDPOINT http:\/\/127\.0\.0\.1:9 is unreachable \(ECONNREFUSED\)/);
    }
  });

  it("gives each attempt its own time limit: a server that never answers gets a line per attempt", async () => {
    let calls = 0;
    const hung = () => {
      calls++;
      return new Promise<string>(() => undefined);
    };
    const { lines, log } = logs();
    const r = await waitForStore({
      probe: hung,
      target,
      log,
      timeoutMs: 3_500,
      minDelayMs: 5,
      attemptTimeoutMs: 1_000,
    });
    assert.equal(r.ok, false);
    assert.ok(calls >= 3, `${calls} attempts`);
    assert.ok(lines.filter((l) => l.level === "warn").length >= 2, JSON.stringify(lines));
    assert.match(lines[0]?.msg ?? "", /is unreachable \(no answer within 1 s\)/);
  });

  it("gives up on an outage once the time is spent, naming S3_ENDPOINT and S3_STARTUP_TIMEOUT_S", async () => {
    const p = probe(Array.from({ length: 1000 }, refused));
    const { log } = logs();
    const r = await waitForStore({ probe: p.run, target, log, timeoutMs: 200, minDelayMs: 20 });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.error.code, "unavailable");
    assert.equal(r.error.variable, "S3_ENDPOINT");
    assert.match(r.error.message, /S3_STARTUP_TIMEOUT_S/);
    assert.ok(p.calls >= 2 && p.calls < 20, `${p.calls} attempts in 200 ms`);
  });

  it("fails at once on a wrong setting, naming the variable to check", async () => {
    const cases: [string, string, RegExp][] = [
      ["NoSuchBucket", "S3_BUCKET", /^S3_BUCKET models does not exist/],
      ["InvalidAccessKeyId", "S3_ACCESS_KEY_ID", /S3_SECRET_ACCESS_KEY were rejected/],
      ["SignatureDoesNotMatch", "S3_ACCESS_KEY_ID", /check the key pair/],
      ["AccessDenied", "S3_ACCESS_KEY_ID", /policy/],
      ["AuthorizationHeaderMalformed", "S3_REGION", /S3_REGION/],
      ["MethodNotAllowed", "S3_ENDPOINT", /check S3_ENDPOINT/],
    ];
    for (const [reason, variable, message] of cases) {
      const p = probe([rejected(reason)]);
      const { lines, log } = logs();
      const r = await waitForStore({ probe: p.run, target, log, timeoutMs: 10_000, minDelayMs: 5 });
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.deepEqual(
        { code: r.error.code, variable: r.error.variable },
        { code: "config", variable },
        reason,
      );
      assert.match(r.error.message, message);
      assert.equal(p.calls, 1, `${reason} is not retried`);
      assert.deepEqual(lines, []);
    }
  });

  it("lets an error that is not the store's propagate (a bug, not an outage)", async () => {
    const { log } = logs();
    const bug = async () => {
      throw new RangeError("bug");
    };
    await assert.rejects(waitForStore({ probe: bug, target, log, timeoutMs: 1000 }), RangeError);
  });
});
