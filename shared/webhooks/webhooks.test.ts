import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { AdapterEvent } from "../manifest/index.ts";
import { createLogger } from "../platform/index.ts";
import { Outbox, ReplayCache, signWebhook, verifyWebhook } from "./index.ts";

const SECRET = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
const clockAt = (ms: number) => ({ now: () => ms });
const T0 = 1_800_000_000_000;
const event: AdapterEvent = {
  type: "adapter.published",
  run: "r",
  version: 1,
  manifestKey: "k",
  manifestSha256: "a".repeat(64),
};

function verify(headers: Record<string, string>, body: string, now = T0, secrets = [SECRET]) {
  return verifyWebhook({ secrets, headers: new Headers(headers), body, clock: clockAt(now) });
}

describe("webhook signing", () => {
  it("verifies what it signs, and matches the Standard Webhooks reference vector", () => {
    const body = '{"test": 2432232314}';
    const headers = signWebhook({ secret: SECRET, id: "msg_1", clock: clockAt(T0), body });
    assert.ok(verify({ ...headers }, body).ok);
    // Vector from the Standard Webhooks spec repository's test suite.
    const ref = signWebhook({
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
      clock: clockAt(1614265330_000),
      body,
    });
    assert.equal(ref["webhook-signature"], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  });

  it("refuses a tampered body, a wrong secret and a missing header", () => {
    const headers = signWebhook({ secret: SECRET, id: "m", clock: clockAt(T0), body: "{}" });
    assert.equal(verify({ ...headers }, '{"x":1}').ok, false);
    const other = `whsec_${Buffer.from("another-secret-of-sufficient-length").toString("base64")}`;
    assert.equal(verify({ ...headers }, "{}", T0, [other]).ok, false);
    assert.ok(verify({ ...headers }, "{}", T0, [other, SECRET]).ok, "rotation: any accepted secret will do");
    const { "webhook-signature": _, ...missing } = headers;
    assert.match(verify(missing, "{}").ok ? "" : "missing", /missing/);
  });

  it("refuses timestamps outside the tolerance, either way", () => {
    const headers = signWebhook({ secret: SECRET, id: "m", clock: clockAt(T0), body: "{}" });
    const late = verify({ ...headers }, "{}", T0 + 301_000);
    assert.match(late.ok ? "" : late.error.message, /old/);
    const early = verify({ ...headers }, "{}", T0 - 301_000);
    assert.match(early.ok ? "" : early.error.message, /future/);
    assert.ok(verify({ ...headers }, "{}", T0 + 299_000).ok);
  });
});

describe("replay cache", () => {
  it("refuses a repeated id until it expires", () => {
    let now = T0;
    const cache = new ReplayCache({ now: () => now }, 1000);
    assert.equal(cache.remember("a"), true);
    assert.equal(cache.remember("a"), false);
    now += 1001;
    assert.equal(cache.remember("b"), true);
    assert.equal(cache.remember("a"), true, "expired ids are forgotten");
  });

  it("stays within its bound", () => {
    const cache = new ReplayCache(clockAt(T0), 60_000, 3);
    for (const id of ["a", "b", "c", "d"]) cache.remember(id);
    assert.equal(cache.remember("a"), true, "the oldest entry was evicted");
    assert.equal(cache.remember("d"), false);
  });
});

describe("outbox", () => {
  const log = createLogger({}, { write: () => {} });
  const root = mkdtempSync(join(tmpdir(), "outbox-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("keeps failed deliveries on disk and sends them from a new outbox on the same directory", async () => {
    const dir = mkdtempSync(join(root, "restart-"));
    let up = false;
    const received: { headers: Headers; body: string }[] = [];
    const fakeFetch = (async (_url: string, init: RequestInit) => {
      if (!up) throw new TypeError("fetch failed");
      received.push({ headers: new Headers(init.headers), body: String(init.body) });
      return new Response(null, { status: 202 });
    }) as typeof fetch;
    const first = new Outbox({
      dir,
      secret: SECRET,
      clock: clockAt(T0),
      log,
      retries: 1,
      minTimeoutMs: 1,
      fetch: fakeFetch,
    });
    await first.start();
    await first.enqueue(event, [{ url: "http://g1/hook" }, { url: "http://g2/hook" }]);
    await new Promise((r) => setTimeout(r, 50));
    first.stop();
    assert.equal((await first.pending()).length, 2);
    assert.equal(received.length, 0);

    up = true;
    const second = new Outbox({
      dir,
      secret: SECRET,
      clock: clockAt(T0),
      log,
      fetch: fakeFetch,
      sweepIntervalMs: 10,
    });
    await second.start();
    for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    second.stop();
    assert.equal(received.length, 2);
    for (const r of received) {
      assert.deepEqual(JSON.parse(r.body), event);
      assert.ok(verify(Object.fromEntries(r.headers), r.body).ok);
    }
    for (let i = 0; i < 100 && (await second.pending()).length > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal((await second.pending()).length, 0);
  });

  it("drops a failing delivery once its subscriber is gone, instead of retrying it until it expires", async () => {
    const dir = mkdtempSync(join(root, "gone-"));
    let attempts = 0;
    const fakeFetch = (async () => {
      attempts++;
      throw new Error("connect ECONNREFUSED");
    }) as unknown as typeof fetch;
    let present = true;
    const outbox = new Outbox({
      dir,
      secret: SECRET,
      clock: clockAt(T0),
      log,
      // Short rounds, swept often: a long p-retry backoff would outlive the test and hold its process.
      retries: 2,
      minTimeoutMs: 1,
      sweepIntervalMs: 5,
      fetch: fakeFetch,
      stillWanted: async (d) => present || d.url !== "http://10.0.0.2/hook",
    });
    await outbox.start();
    await outbox.enqueue(event, [
      { url: "http://10.0.0.2/hook", via: "dns+http://g/hook" },
      { url: "http://10.0.0.3/hook", via: "dns+http://g/hook" },
    ]);
    for (let i = 0; i < 100 && attempts < 6; i++) await new Promise((r) => setTimeout(r, 5));
    present = false;
    for (let i = 0; i < 200 && outbox.stats.dropped === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const attemptsAtDrop = attempts;
    await new Promise((r) => setTimeout(r, 30));
    outbox.stop();
    assert.equal(outbox.stats.dropped, 1);
    assert.equal(outbox.stats.dead, 0);
    // The other replica's delivery is still pending and still tried; the gone one's file is removed.
    assert.deepEqual(
      (await outbox.pending()).map((d) => d.url),
      ["http://10.0.0.3/hook"],
    );
    assert.ok(attempts > attemptsAtDrop, "the remaining delivery keeps being retried");
    // stop() ends the retry loop in flight: no attempt after it (it stays on disk for a restart).
    const attemptsAtStop = attempts;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(attempts, attemptsAtStop);
  });

  it("gives up on a subscriber that answers 4xx", async () => {
    const dir = mkdtempSync(join(root, "4xx-"));
    const fakeFetch = (async () => new Response(null, { status: 401 })) as unknown as typeof fetch;
    const outbox = new Outbox({ dir, secret: SECRET, clock: clockAt(T0), log, fetch: fakeFetch });
    await outbox.start();
    await outbox.enqueue(event, [{ url: "http://g/hook" }]);
    for (let i = 0; i < 100 && outbox.stats.dead === 0; i++) await new Promise((r) => setTimeout(r, 10));
    outbox.stop();
    assert.equal(outbox.stats.dead, 1);
    assert.equal((await outbox.pending()).length, 0);
  });
});
