/**
 * Every generator route that takes a body bounds it while it streams in, and a request whose prompt
 * scoring would hold more logits than the operator allows is refused before the engine sees it. A
 * real generator serving llama-tiny, over loopback HTTP.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import type { Service } from "@loracast/dev-support/supervisor";
import { generatorErrorBodySchema } from "@loracast/shared/generator-api";
import { type Stack, startServingStack } from "../helpers/stack.ts";

const MAX_REQUEST = 64 * 1024;

/** Resident set of a process, in bytes (Linux). */
function rss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1] ?? Number.NaN) * 1024;
}

/**
 * POSTs `total` bytes of a JSON-looking body in 1 MiB chunks without a Content-Length (chunked), so
 * only a bound enforced while reading can stop it. Resolves with the status and body the server
 * answered, once it answers (it may stop reading early).
 */
function postStream(url: string, total: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", (e: NodeJS.ErrnoException) => {
      // The server may close the socket after answering, while chunks are still in flight.
      if (e.code !== "EPIPE" && e.code !== "ECONNRESET") reject(e);
    });
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (req.destroyed) return;
        if (!req.write(sent === chunk.length ? Buffer.concat([Buffer.from('{"prompt":"'), chunk]) : chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe("request bounds on the generator", () => {
  let stack: Stack;
  let g: Service;
  before(async () => {
    ({ stack, generator: g } = await startServingStack({
      GENERATOR_MAX_REQUEST_BYTES: String(MAX_REQUEST),
      // 0.1 MiB: llama-tiny (vocabulary 256) scores about 100 prompt tokens of one sequence.
      GENERATOR_PROMPT_LOGPROBS_MAX_MB: "0.1",
    }));
  });
  after(() => stack?.stop());

  it("refuses an oversize body on every route that takes one, with 413 while it streams, and memory stays flat", async () => {
    const pid = g.proc.pid as number;
    const idle = rss(pid);
    let peak = idle;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss(pid));
    }, 20);
    try {
      for (const path of [
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/webhooks/adapters",
        "/v1/load_lora_adapter",
        "/v1/unload_lora_adapter",
      ]) {
        const r = await postStream(`${g.url}${path}`, 256 * 1024 * 1024);
        assert.equal(r.status, 413, `${path}: ${r.body}`);
        const { error } = generatorErrorBodySchema.parse(JSON.parse(r.body));
        assert.equal(error.code, "payload_too_large");
        assert.match(error.message, /limited to \d+ bytes/);
      }
    } finally {
      clearInterval(sampler);
    }
    assert.ok(peak - idle < 100 * 1024 * 1024, `RSS grew by ${((peak - idle) / 2 ** 20).toFixed(0)} MiB`);
    // And a body within the bound is still served.
    const ok = await fetch(`${g.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama-tiny", prompt: "hi", max_tokens: 2, temperature: 0 }),
    });
    assert.equal(ok.status, 200);
  });

  it("refuses prompt scoring past GENERATOR_PROMPT_LOGPROBS_MAX_MB with 400 naming the parameter", async () => {
    const post = (body: object) =>
      fetch(`${g.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "llama-tiny", max_tokens: 1, temperature: 0, ...body }),
      });
    const long = "a".repeat(200);
    for (const [body, param] of [
      [{ prompt: long, prompt_logprobs: 1 }, "prompt_logprobs"],
      [{ prompt: long, echo: true, logprobs: 1 }, "echo"],
      [{ prompt: "a".repeat(40), prompt_logprobs: 0, n: 16 }, "prompt_logprobs"],
    ] as const) {
      const r = await post(body);
      assert.equal(r.status, 400);
      const { error } = generatorErrorBodySchema.parse(await r.json());
      assert.equal(error.param, param);
      assert.match(error.message, /GENERATOR_PROMPT_LOGPROBS_MAX_MB/);
    }
    // A short prompt within the bound is scored.
    const small = await post({ prompt: "abc", prompt_logprobs: 1 });
    assert.equal(small.status, 200);
  });
});
