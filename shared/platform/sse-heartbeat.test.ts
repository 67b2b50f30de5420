import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { listen } from "./http-server.ts";
import { readSse } from "./sse-client.ts";
import { SSE_HEARTBEAT, sseHeartbeatSeconds, startSseHeartbeat } from "./sse-heartbeat.ts";

/**
 * An event stream that stays quiet for `quietMs`, then sends one event and ends, with a heartbeat
 * every `heartbeatMs`; `stopped` resolves once the route stopped its heartbeat.
 */
function quietStream(quietMs: number, heartbeatMs: number) {
  let stoppedNow = (): void => undefined;
  const stopped = new Promise<void>((r) => {
    stoppedNow = r;
  });
  const app = new Hono();
  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      const stop = startSseHeartbeat(stream, heartbeatMs);
      try {
        await stream.sleep(quietMs);
        await stream.writeSSE({ id: "1", event: "step", data: JSON.stringify({ step: 1 }) });
      } finally {
        stop();
        stoppedNow();
      }
    }),
  );
  return { app, stopped };
}

const count = (text: string, part: string): number => text.split(part).length - 1;

describe("SSE heartbeat", () => {
  it("sends `: ping` comment events while the stream is quiet, each a whole event of its own", async () => {
    const { app, stopped } = quietStream(400, 50);
    const server = await listen(app.fetch, "127.0.0.1", 0);
    try {
      const text = await (await fetch(`${server.url}/events`)).text();
      await stopped;
      // 400 ms at one per 50 ms: about 7; timers on a loaded machine fire late, never early.
      const pings = count(text, SSE_HEARTBEAT);
      assert.ok(pings >= 2 && pings <= 8, `${pings} heartbeats in ${JSON.stringify(text)}`);
      const blocks = text.split("\n\n").filter((b) => b !== "");
      assert.deepEqual(
        blocks.filter((b) => b !== ": ping"),
        ['event: step\ndata: {"step":1}\nid: 1'],
        "every other block is the one event, whole",
      );
    } finally {
      await server.close();
    }
  });

  it("is ignored by readSse, which yields only the events", async () => {
    const { app } = quietStream(300, 30);
    const server = await listen(app.fetch, "127.0.0.1", 0);
    try {
      const seen: unknown[] = [];
      for await (const data of readSse(`${server.url}/events`)) seen.push(data);
      assert.deepEqual(seen, [{ step: 1 }]);
    } finally {
      await server.close();
    }
  });

  it("stops when the client goes away", async () => {
    let aborted = (): void => undefined;
    const gone = new Promise<void>((r) => {
      aborted = r;
    });
    let writes = 0;
    const app = new Hono();
    app.get("/events", (c) =>
      streamSSE(c, async (stream) => {
        const write = stream.write.bind(stream);
        stream.write = (input) => {
          writes++;
          return write(input);
        };
        startSseHeartbeat(stream, 20);
        stream.onAbort(aborted);
        // Never ends by itself: only the client's leaving stops the heartbeat.
        await new Promise<void>((r) => stream.onAbort(r));
      }),
    );
    const server = await listen(app.fetch, "127.0.0.1", 0);
    try {
      const controller = new AbortController();
      const res = await fetch(`${server.url}/events`, { signal: controller.signal });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), SSE_HEARTBEAT);
      controller.abort();
      await gone;
      const after = writes;
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(writes, after, "no heartbeat is written after the client left");
    } finally {
      await server.close();
    }
  });

  it("takes its interval in seconds from 0.1 to 120, 15 by default", () => {
    assert.equal(sseHeartbeatSeconds.parse(undefined), 15);
    assert.equal(sseHeartbeatSeconds.parse("0.5"), 0.5);
    for (const bad of ["0", "0.05", "121", "-1", "soon"])
      assert.equal(sseHeartbeatSeconds.safeParse(bad).success, false, bad);
  });
});
