import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DirectReadError, directRead } from "./direct-read.ts";

/** A raw TCP server whose reply to each connection is scripted per test. */
let reply: (socket: Socket, request: string) => Promise<void> = async () => undefined;
let server: Server;
let url: URL;

before(async () => {
  server = createServer((socket) => {
    socket.once("data", (d) => {
      reply(socket, d.toString("latin1")).catch(() => socket.destroy());
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address() as { port: number };
  url = new URL(`http://127.0.0.1:${address.port}/bucket/key?X-Amz-Signature=abc`);
});
after(() => new Promise<void>((r) => server.close(() => r())));

const head = (status: string, headers: Record<string, string | number>) =>
  `HTTP/1.1 ${status}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;

/** Reads `size` bytes from the server, recording each region as it lands. */
async function read(size: number, options: { signal?: AbortSignal; idleTimeoutMs?: number } = {}) {
  const into = new Uint8Array(size);
  const regions: Uint8Array[] = [];
  const hash = createHash("sha256");
  const answer = await directRead(
    url,
    into,
    (region) => {
      regions.push(region);
      hash.update(region);
    },
    { idleTimeoutMs: options.idleTimeoutMs ?? 5000, ...(options.signal ? { signal: options.signal } : {}) },
  );
  return { answer, into, regions, digest: hash.digest("hex") };
}

describe("directRead", () => {
  it("sends the presigned path and query, and lands a body that arrives in pieces", async () => {
    const body = randomBytes(300_001);
    let request = "";
    reply = async (socket, req) => {
      request = req;
      // The first piece carries the head and the start of the body, as a real server's often does.
      socket.write(
        Buffer.concat([
          Buffer.from(head("200 OK", { "Content-Length": body.length })),
          body.subarray(0, 1000),
        ]),
      );
      for (let at = 1000; at < body.length; at += 70_000) {
        await sleep(2);
        socket.write(body.subarray(at, Math.min(body.length, at + 70_000)));
      }
    };
    const r = await read(body.length);
    assert.deepEqual(r.answer, { kind: "body" });
    assert.ok(Buffer.from(r.into).equals(body));
    assert.equal(r.digest, createHash("sha256").update(body).digest("hex"));
    assert.ok(r.regions.length > 2, "regions are reported as they land, not once at the end");
    assert.equal(
      r.regions.reduce((n, g) => n + g.byteLength, 0),
      body.length,
    );
    assert.ok(
      r.regions.every((g) => g.buffer === r.into.buffer),
      "every region is a view of the destination",
    );
    assert.match(request, /^GET \/bucket\/key\?X-Amz-Signature=abc HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
  });

  it("reports another size without reading the body into the buffer", async () => {
    reply = async (socket) => {
      socket.write(head("200 OK", { "content-length": 10 }));
      socket.end("0123456789");
    };
    const r = await read(4);
    assert.deepEqual(r.answer, { kind: "size", size: 10 });
    assert.equal(r.regions.length, 0);
  });

  it("reports a non-200 status with the start of its body", async () => {
    const xml = "<Error><Code>NoSuchKey</Code></Error>";
    reply = async (socket) => {
      socket.end(head("404 Not Found", { "Content-Length": xml.length }) + xml);
    };
    const r = await read(4);
    assert.deepEqual(r.answer, { kind: "status", status: 404, detail: xml });
  });

  it("leaves a chunked reply to another path", async () => {
    reply = async (socket) => {
      socket.end(`${head("200 OK", { "Transfer-Encoding": "chunked" })}4\r\nabcd\r\n0\r\n\r\n`);
    };
    assert.deepEqual((await read(4)).answer, { kind: "unframed" });
  });

  it("fails with the bytes delivered when the connection breaks off mid-body", async () => {
    reply = async (socket) => {
      socket.write(head("200 OK", { "Content-Length": 100 }));
      await sleep(5);
      socket.end(Buffer.alloc(60, 7));
    };
    await assert.rejects(read(100), (e: unknown) => {
      assert.ok(e instanceof DirectReadError);
      assert.equal(e.delivered, 60);
      assert.match(e.message, /closed after 60 bytes/);
      return true;
    });
  });

  it("refuses a body longer than its Content-Length and a reply that is not HTTP", async () => {
    reply = async (socket) => {
      socket.end(`${head("200 OK", { "Content-Length": 2 })}abc`);
    };
    await assert.rejects(read(2), /more body bytes than the Content-Length/);
    reply = async (socket) => {
      socket.end("SSH-2.0-OpenSSH\r\n\r\n");
    };
    await assert.rejects(read(2), /not an HTTP\/1\.x response: SSH-2\.0/);
  });

  it("refuses a head larger than its buffer", async () => {
    reply = async (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nX-Padding: ${"a".repeat(20_000)}`);
    };
    await assert.rejects(read(2), /response head exceeds 16384 bytes/);
  });

  it("gives up on a silent server and on an abort", async () => {
    reply = async (socket) => {
      socket.write(head("200 OK", { "Content-Length": 10 }));
    };
    await assert.rejects(read(10, { idleTimeoutMs: 50 }), /no data for 50 ms/);
    const controller = new AbortController();
    const pending = read(10, { signal: controller.signal });
    await sleep(20);
    controller.abort();
    await assert.rejects(pending, /aborted/);
  });
});
