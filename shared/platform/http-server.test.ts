import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, it } from "node:test";
import { listen } from "./http-server.ts";

/** A handler whose `/slow` answers only once `release()` is called; `/events` is an endless event stream. */
function heldHandler() {
  let release = (): void => undefined;
  const held = new Promise<void>((r) => {
    release = r;
  });
  let arrived = (): void => undefined;
  const started = new Promise<void>((r) => {
    arrived = r;
  });
  const fetch = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (path === "/events") {
      return new Response(
        new ReadableStream({
          start: (c) => c.enqueue(new TextEncoder().encode("data: 1\n\n")),
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    arrived();
    await held;
    return new Response("finished");
  };
  return { fetch, release, started };
}

/** Resolves once `promise` settles, or with "pending" after `ms`. */
const within = <T>(promise: Promise<T>, ms: number): Promise<T | "pending"> =>
  Promise.race([promise, new Promise<"pending">((r) => setTimeout(() => r("pending"), ms))]);

describe("listen: close() drains", () => {
  it("lets an in-flight request finish with its full response, then closes", async () => {
    const h = heldHandler();
    const server = await listen(h.fetch, "127.0.0.1", 0);
    const response = fetch(`${server.url}/slow`).then((r) => r.text());
    await h.started;
    const closed = server.close();
    // Still draining: the held request keeps the server open.
    assert.equal(await within(closed, 300), "pending");
    // New connections are refused while it drains.
    await assert.rejects(fetch(`${server.url}/slow`));
    h.release();
    assert.equal(await response, "finished");
    assert.equal(await within(closed, 5000), undefined);
  });

  it("ends event streams at once instead of waiting for them", async () => {
    const h = heldHandler();
    const server = await listen(h.fetch, "127.0.0.1", 0);
    const stream = await fetch(`${server.url}/events`);
    assert.equal(stream.headers.get("content-type"), "text/event-stream");
    const body = stream.text().then(
      (t) => t,
      () => "cut",
    );
    assert.equal(await within(server.close(), 5000), undefined);
    assert.match(await body, /^(data: 1\n\n|cut)$/);
  });

  it("drops requests still running after drainMs, and closes", async () => {
    const h = heldHandler();
    const server = await listen(h.fetch, "127.0.0.1", 0, { drainMs: 200 });
    const outcome = new Promise<string>((resolve) => {
      const { port } = new URL(server.url);
      request({ host: "127.0.0.1", port, path: "/slow" }, () => resolve("answered"))
        .on("error", (e) => resolve((e as NodeJS.ErrnoException).code ?? "error"))
        .end();
    });
    await h.started;
    const started = Date.now();
    assert.equal(await within(server.close(), 5000), undefined);
    assert.ok(Date.now() - started >= 150, "closed before the drain bound");
    assert.equal(await outcome, "ECONNRESET");
    h.release();
  });
});
