import assert from "node:assert/strict";
import { it } from "node:test";
import { Hono } from "hono";
import { createLogger, type LogLevel, requestId } from "./index.ts";

function capture(level?: LogLevel) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(
    { service: "t" },
    {
      clock: { now: () => Date.UTC(2026, 0, 1) },
      write: (l) => lines.push(JSON.parse(l)),
      ...(level ? { level } : {}),
    },
  );
  return { log, lines };
}

it("writes one JSON object a line: level, t from the clock, base and call fields, msg", () => {
  const { log, lines } = capture();
  log.child({ run: "r" }).info("published", { version: 3 });
  assert.deepEqual(lines, [
    { level: "info", t: "2026-01-01T00:00:00.000Z", service: "t", run: "r", version: 3, msg: "published" },
  ]);
});

it("drops lines below its level: info by default, debug and warn when asked", () => {
  for (const [level, expected] of [
    [undefined, ["info", "warn", "error"]],
    ["debug", ["debug", "info", "warn", "error"]],
    ["warn", ["warn", "error"]],
    ["error", ["error"]],
  ] as const) {
    const { log, lines } = capture(level);
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    assert.deepEqual(
      lines.map((l) => l.level),
      expected,
      `level ${level}`,
    );
  }
});

it("redacts credentials in every string, the message, child fields and nested ones included; errors as name and message", () => {
  const { log, lines } = capture();
  const url = "https://user:hunter2@example.com/hook?token=abc";
  log
    .child({ subscriber: url })
    .warn(`cannot reach ${url}`, { nested: { urls: [url] }, error: new TypeError(`fetch ${url} failed`) });
  const text = JSON.stringify(lines);
  assert.ok(!text.includes("hunter2") && !text.includes("token=abc"), text);
  const line = lines[0] as Record<string, unknown>;
  assert.deepEqual(Object.keys(line.error as object), ["name", "message"]);
  assert.equal((line.error as { name: string }).name, "TypeError");
});

it("lines logged while a request is served carry its request id, and only those", async () => {
  const { log, lines } = capture();
  const app = new Hono();
  app.use(
    "*",
    requestId(() => "generated-id"),
  );
  app.get("/", async (c) => {
    await new Promise((r) => setTimeout(r, 1));
    log.info("inside");
    return c.text("ok");
  });
  const given = await app.request("/", { headers: { "x-request-id": "client-id-1" } });
  assert.equal(given.headers.get("x-request-id"), "client-id-1");
  await app.request("/");
  // An id no log line should carry (a header of any length, any characters) is replaced.
  const odd = await app.request("/", { headers: { "x-request-id": `a b ${"x".repeat(200)}` } });
  assert.equal(odd.headers.get("x-request-id"), "generated-id");
  log.info("outside");
  assert.deepEqual(
    lines.map((l) => [l.msg, l.requestId]),
    [
      ["inside", "client-id-1"],
      ["inside", "generated-id"],
      ["inside", "generated-id"],
      ["outside", undefined],
    ],
  );
});
