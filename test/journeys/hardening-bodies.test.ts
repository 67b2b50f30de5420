/**
 * Request bodies are bounded while they stream (issue 15, item 7), on real processes: the embedded
 * S3 server and a trainer. JSON routes refuse a body past 1 MiB with 413 `payload_too_large`; an
 * adapter upload past `MAX_UPLOAD_MB` is refused with 413 also without a Content-Length, with the
 * trainer's peak RSS flat; an upload within the bound is held about once, not ~5 times (a 2 GiB
 * upload used to peak at 10.4 GB). A raw token without `Bearer ` is refused with 401 (item 9).
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runVersionsSchema, trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { LLAMA_7B_DIMS, randomAdapter, writeBaseConfig } from "../helpers/adapters.ts";
import { memory, resetPeak } from "../helpers/memory.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

const MiB = 1024 * 1024;
const MAX_UPLOAD_MB = 160;

/**
 * POSTs `body` with node:http, sending the headers first and the body only if no answer came within
 * `BODY_AFTER_MS`. A server that refuses on Content-Length (hono's bodyLimit) answers before it
 * reads a byte; sending the body at once races that answer: the server closes the socket after its
 * 413 (`connection: close`), and a write still going out then fails with EPIPE before the client
 * has parsed the 413 (seen in CI on a loaded 2-core host; fetch showed it as "fetch failed"). A
 * server that reads the body before refusing still gets it, after the wait.
 */
function postEarly(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  const BODY_AFTER_MS = 2000;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: "POST",
      headers: { ...headers, "content-length": Buffer.byteLength(body) },
    });
    const sendBody = setTimeout(() => req.end(body), BODY_AFTER_MS);
    req.on("response", (res) => {
      clearTimeout(sendBody);
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
        req.destroy();
      });
      res.on("error", reject);
    });
    req.on("error", (e) => {
      clearTimeout(sendBody);
      reject(e);
    });
    req.flushHeaders();
  });
}

/**
 * A multipart body of a small config and `size` bytes of weights, streamed without a Content-Length.
 * The weights start with a valid safetensors header (one U8 tensor over the rest), so that what
 * refuses them is the size bound, not the header check.
 */
function streamedUpload(size: number): { body: ReadableStream<Uint8Array>; type: string } {
  const boundary = "loracast-bound";
  // Padded to a fixed length (trailing spaces are valid JSON), so the tensor can cover the rest.
  const HEADER_BYTES = 128;
  const data = size - 8 - HEADER_BYTES;
  const json = Buffer.from(
    JSON.stringify({ w: { dtype: "U8", shape: [data], data_offsets: [0, data] } }).padEnd(HEADER_BYTES),
  );
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.byteLength));
  const head = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="adapter_config.json"; filename="adapter_config.json"\r\n\r\n{}\r\n` +
        `--${boundary}\r\ncontent-disposition: form-data; name="adapter_model.safetensors"; filename="adapter_model.safetensors"\r\n\r\n`,
    ),
    prefix,
    json,
  ]);
  size -= 8 + json.byteLength;
  const tail = new TextEncoder().encode(`\r\n--${boundary}--\r\n`);
  const chunk = new Uint8Array(MiB);
  let sent = 0;
  let stage = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (stage === 0) {
        stage = 1;
        controller.enqueue(head);
      } else if (sent < size) {
        const n = Math.min(MiB, size - sent);
        sent += n;
        controller.enqueue(chunk.subarray(0, n));
      } else {
        controller.enqueue(tail);
        controller.close();
      }
    },
  });
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

describe("request bodies are bounded while they stream", () => {
  let stack: Stack;
  const pid = (): number => stack.trainer.proc.pid as number;
  const auth = { authorization: `Bearer ${TOKEN}` };

  before(async () => {
    stack = await startStack({ trainerEnv: { MAX_UPLOAD_MB: String(MAX_UPLOAD_MB) } });
  });
  after(async () => {
    await stack?.stop();
  });

  it("refuses a JSON body past 1 MiB with 413 payload_too_large on every JSON route", async () => {
    const big = JSON.stringify({ run: "x", pad: "a".repeat(2 * MiB) });
    for (const path of ["/v1/runs", "/v1/subscriptions", "/v1/runs/x/rollback"]) {
      const res = await postEarly(
        `${stack.trainer.url}${path}`,
        { ...auth, "content-type": "application/json" },
        big,
      );
      const text = res.text;
      assert.equal(res.status, 413, `${path}: ${text}`);
      assert.equal(trainerErrorBodySchema.parse(JSON.parse(text)).error.code, "payload_too_large", path);
    }
  });

  it("refuses a raw token without `Bearer ` with 401 saying the expected form", async () => {
    const res = await fetch(`${stack.trainer.url}/v1/subscriptions`, {
      method: "POST",
      headers: { authorization: TOKEN, "content-type": "application/json" },
      body: JSON.stringify({ url: "http://127.0.0.1:1/hook" }),
    });
    const text = await res.text();
    assert.equal(res.status, 401, text);
    assert.match(text, /Bearer <TRAINER_API_TOKEN>/);
  });

  it("refuses an upload past the bound while it streams, with flat memory", async () => {
    const idle = memory(pid()).rss;
    resetPeak(pid());
    const { body, type } = streamedUpload((MAX_UPLOAD_MB + 96) * MiB);
    const res = await fetch(`${stack.trainer.url}/v1/runs/big/adapters`, {
      method: "POST",
      headers: { ...auth, "content-type": type },
      body,
      duplex: "half",
    } as RequestInit);
    const text = await res.text();
    assert.equal(res.status, 413, text);
    assert.equal(trainerErrorBodySchema.parse(JSON.parse(text)).error.code, "payload_too_large");
    const grown = memory(pid()).peak - idle;
    console.log(`oversize upload: idle RSS ${idle / MiB} MiB, peak +${(grown / MiB).toFixed(1)} MiB`);
    assert.ok(grown < 100 * MiB, `peak RSS grew by ${grown / MiB} MiB`);
    const versions = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/big/versions`)).json(),
    );
    assert.deepEqual(versions.versions, [], "nothing was published");
  });

  it("holds an upload within the bound about once in memory", async () => {
    const base = writeBaseConfig(join(stack.dir, "base7b"), LLAMA_7B_DIMS);
    const files = randomAdapter(base, 1, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], 0.01);
    const size = files.weights.byteLength;
    const idle = memory(pid()).rss;
    resetPeak(pid());
    const res = await stack.publish("sized", files);
    assert.equal(res.status, 201, await res.clone().text());
    const grown = memory(pid()).peak - idle;
    console.log(
      `in-limit upload of ${(size / MiB).toFixed(1)} MiB: idle RSS ${(idle / MiB).toFixed(1)} MiB, peak +${(grown / MiB).toFixed(1)} MiB`,
    );
    assert.ok(grown < 2 * size, `peak RSS grew by ${(grown / size).toFixed(2)}× the upload`);
  });
});
