import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EgressRefused } from "@loracast/shared/egress";
import type { AdapterList, AdapterRow } from "@loracast/shared/generator-api";
import { FLEET_MAX_ROWS, fleetSchema } from "@loracast/shared/trainer-api";
import type { DeliveryTarget } from "@loracast/shared/webhooks";
import type { Subscription } from "../subscriptions.ts";
import { type FleetDeps, generatorBase, readFleet } from "./fleet-view.ts";

const SHA = "a".repeat(64);

function row(run: string, version: number, extra: Partial<AdapterRow> = {}): AdapterRow {
  return {
    run,
    version,
    state: "retired",
    pulling: null,
    loaded: false,
    sha256: SHA,
    manifestSha256: SHA,
    bytes: 10,
    reason: null,
    trigger: "webhook",
    announcedAt: 1000 * version,
    activatedAt: 1000 * version + 250,
    pinned: false,
    ...extra,
  };
}

function listing(rows: AdapterRow[], active: AdapterList["active"]): AdapterList {
  return { startedAt: 1_000, active, data: rows, refusedVersionsOmitted: {}, refused: [] };
}

const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A fleet over static subscribers `urls`, each answered by `answer` (keyed by the adapters URL). */
function deps(
  urls: string[],
  answer: (url: string, init?: RequestInit) => Promise<Response>,
  extra: Partial<FleetDeps> = {},
): FleetDeps {
  const subs: Subscription[] = urls.map((url, i) => ({ id: `static-${i}`, url, source: "static" }));
  return {
    subscriptions: () => subs,
    targets: async () => urls.map((url): DeliveryTarget => ({ url })),
    fetch: ((input: string, init?: RequestInit) => answer(input, init)) as typeof fetch,
    now: () => 1_700_000_000_000,
    timeoutMs: 200,
    maxBodyBytes: 64 * 1024,
    concurrency: 4,
    ...extra,
  };
}

const hook = (port: number) => `http://127.0.0.1:${port}/v1/webhooks/adapters`;

describe("readFleet", () => {
  it("lists each generator's rows of the run, newest first, and its active version", async () => {
    const body = listing(
      [row("a", 1), row("a", 3, { state: "active" }), row("b", 9, { state: "active" }), row("a", 2)],
      { a: { version: 3, sha256: SHA }, b: { version: 9, sha256: SHA } },
    );
    const fleet = fleetSchema.parse(
      await readFleet(
        deps([hook(9002)], async (url) => {
          assert.equal(url, "http://127.0.0.1:9002/v1/adapters");
          return json(body);
        }),
        "a",
      ),
    );
    const [g] = fleet.generators;
    assert.equal(g?.url, "http://127.0.0.1:9002");
    assert.equal(g?.reach, "ok");
    assert.deepEqual(g?.subscriptions, ["static-0"]);
    assert.equal(g?.startedAt, 1_000, "the generator's start time, for the dashboard's latency");
    // A generator from before `startedAt` (a fleet mid-upgrade) is still listed, its start unknown.
    const { startedAt: _omitted, ...older } = body;
    const [o] = fleetSchema.parse(
      await readFleet(
        deps([hook(9002)], async () => json(older)),
        "a",
      ),
    ).generators;
    assert.deepEqual([o?.reach, o?.startedAt, o?.active], ["ok", null, { a: { version: 3, sha256: SHA } }]);
    assert.deepEqual(g?.active, { a: { version: 3, sha256: SHA } });
    assert.deepEqual(
      g?.versions.map((r) => r.version),
      [3, 2, 1],
    );
    assert.equal(fleet.run, "a");
    assert.equal(fleet.checkedAt, new Date(1_700_000_000_000).toISOString());
  });

  it("names why a generator is not listed: unreachable, timeout, refused, HTTP error, not JSON, not a listing", async () => {
    const urls = [hook(1), hook(2), hook(3), hook(4), hook(5), hook(6)];
    const answers: Record<string, (init?: RequestInit) => Promise<Response>> = {
      "1": async () => {
        throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } });
      },
      "2": (init) =>
        new Promise((_, reject) =>
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
        ),
      "3": async () => {
        throw new EgressRefused("host 169.254.169.254: a link-local or cloud-metadata address");
      },
      "4": async () => json({ error: { message: "boom" } }, 500),
      "5": async () => new Response("<html>", { status: 200 }),
      "6": async () => json({ active: {}, data: [{ run: "a" }] }),
    };
    const fleet = await readFleet(
      deps(urls, (url, init) => (answers[new URL(url).port] as (i?: RequestInit) => Promise<Response>)(init)),
      null,
    );
    const seen = fleet.generators.map((g) => [g.reach, g.error]);
    assert.deepEqual(seen[0], ["unreachable", "ECONNREFUSED"]);
    assert.deepEqual(seen[1], ["unreachable", "no answer within 200 ms"]);
    assert.equal(seen[2]?.[0], "refused");
    assert.deepEqual(seen[3], ["invalid", "GET /v1/adapters answered HTTP 500"]);
    assert.deepEqual(seen[4], ["invalid", "GET /v1/adapters answered something other than JSON"]);
    assert.equal(seen[5]?.[0], "invalid");
    assert.match(String(seen[5]?.[1]), /not an adapter listing/);
    for (const g of fleet.generators) assert.deepEqual([g.startedAt, g.active, g.versions], [null, {}, []]);
  });

  it("stops reading a listing past the byte bound, with or without Content-Length", async () => {
    const big = "x".repeat(2048);
    const streamed = () =>
      new Response(
        new ReadableStream({
          start(c) {
            for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode(big));
            c.close();
          },
        }),
      );
    const fleet = await readFleet(
      deps(
        [hook(1), hook(2)],
        async (url) =>
          new URL(url).port === "1"
            ? new Response(big.repeat(8), { headers: { "content-length": String(big.length * 8) } })
            : streamed(),
        { maxBodyBytes: 4096 },
      ),
      null,
    );
    assert.deepEqual(
      fleet.generators.map((g) => g.reach),
      ["invalid", "invalid"],
    );
    assert.match(String(fleet.generators[0]?.error), /16384 bytes, more than the 4096/);
    assert.match(String(fleet.generators[1]?.error), /passed the 4096 bytes/);
  });

  it("asks at most `concurrency` generators at once, and keeps their order", async () => {
    let inFlight = 0;
    let most = 0;
    const urls = Array.from({ length: 10 }, (_, i) => hook(9000 + i));
    const fleet = await readFleet(
      deps(
        urls,
        async () => {
          inFlight++;
          most = Math.max(most, inFlight);
          await new Promise((r) => setTimeout(r, 5));
          inFlight--;
          return json(listing([], {}));
        },
        { concurrency: 3 },
      ),
      null,
    );
    assert.equal(most, 3);
    assert.deepEqual(
      fleet.generators.map((g) => g.url),
      urls.map(generatorBase),
    );
  });

  it("lists each address of a dns+ subscriber as a generator, under that subscription's id", async () => {
    const via = "dns+http://generators.loracast.svc:8080/v1/webhooks/adapters";
    const d = deps([], async () => json(listing([], {})));
    d.subscriptions = () => [
      { id: "static-0", url: via, source: "static" },
      { id: "sub_x", url: hook(9002), source: "api" },
    ];
    d.targets = async () => [
      { url: "http://10.0.0.7:8080/v1/webhooks/adapters", via },
      { url: "http://10.0.0.8:8080/v1/webhooks/adapters", via },
      { url: hook(9002) },
    ];
    const fleet = await readFleet(d, null);
    assert.deepEqual(
      fleet.generators.map((g) => [g.url, g.subscriptions]),
      [
        ["http://10.0.0.7:8080", ["static-0"]],
        ["http://10.0.0.8:8080", ["static-0"]],
        ["http://127.0.0.1:9002", ["sub_x"]],
      ],
    );
  });

  it("bounds the rows per generator and shows URLs with credentials redacted", async () => {
    const rows = Array.from({ length: FLEET_MAX_ROWS + 7 }, (_, i) => row("a", i + 1));
    const fleet = await readFleet(
      deps(["http://user:secret@127.0.0.1:9002/v1/webhooks/adapters"], async () => json(listing(rows, {}))),
      "a",
    );
    const [g] = fleet.generators;
    assert.equal(g?.versions.length, FLEET_MAX_ROWS);
    assert.equal(g?.versions[0]?.version, FLEET_MAX_ROWS + 7);
    assert.equal(g?.versionsOmitted, 7);
    assert.doesNotMatch(JSON.stringify(fleet), /secret/);
  });
});

describe("generatorBase", () => {
  it("strips the webhook path and keeps any other URL as the base", () => {
    assert.equal(generatorBase("http://h:9002/v1/webhooks/adapters"), "http://h:9002");
    assert.equal(generatorBase("https://h/prefix/v1/webhooks/adapters/"), "https://h/prefix");
    assert.equal(generatorBase("http://h:9002/"), "http://h:9002");
  });
});
