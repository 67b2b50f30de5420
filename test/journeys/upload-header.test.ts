/**
 * An adapter upload whose safetensors header is bad is refused while it streams (issue 15, item 7),
 * on real processes: the embedded S3 server and a trainer. A 256 MiB upload whose header the codec
 * refuses by itself (a length prefix past the cap, a header that is not JSON, an unknown dtype, a
 * shape that contradicts its data_offsets, overlapping tensors) gets the codec's own error as a 400
 * while the client, having sent 8 MiB of it, waits for an answer, with the trainer's RSS flat and
 * nothing left in its temp dir. A client that sends the whole body before reading (fetch) gets the
 * 400 too, not a reset connection (the trainer drops the rest of a refused body). A file shorter
 * than its declared header is refused with the codec's text too, and a good upload still
 * publishes. (The trainer used to write the whole body to disk, read it back into memory and only
 * then decode the header.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeSafetensors } from "@loracast/shared/safetensors";
import { runVersionsSchema, trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { fixtureAdapter } from "../helpers/adapters.ts";
import { memory, resetPeak } from "../helpers/memory.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

const MiB = 1024 * 1024;
const MAX_UPLOAD_MB = 300;
const UPLOAD_BYTES = 256 * MiB;
const BOUNDARY = "loracast-header-bound";
/** A valid PEFT config, so that what an upload is refused for is its weights. */
const CONFIG = JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"] });

/** A length prefix and a header, as bytes. */
function head(header: string, declared = BigInt(Buffer.byteLength(header))): Buffer {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declared);
  return Buffer.concat([prefix, Buffer.from(header)]);
}

interface Sent {
  status: number;
  text: string;
  /** Body bytes the client had written when the response arrived. */
  sentAtResponse: number;
  total: number;
}

/** Where the client pauses its upload to wait for an answer, and for how long at most. */
const PAUSE_AT = 8 * MiB;
const PAUSE_MS = 20_000;

/**
 * POSTs a multipart upload whose weights are `weightsHead` followed by zeros up to `weightsBytes`,
 * generated while it is sent (never held here), honouring the socket's backpressure. After
 * `PAUSE_AT` bytes it waits up to `PAUSE_MS` for an answer before sending the rest, so whether the
 * trainer answers early does not depend on how fast this machine is.
 */
function upload(url: string, weightsHead: Uint8Array, weightsBytes: number): Promise<Sent> {
  const lead = Buffer.from(
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="adapter_config.json"; filename="adapter_config.json"\r\n\r\n` +
      `${CONFIG}\r\n` +
      `--${BOUNDARY}\r\ncontent-disposition: form-data; name="adapter_model.safetensors"; filename="adapter_model.safetensors"\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const total = lead.byteLength + weightsBytes + tail.byteLength;
  const zeros = Buffer.alloc(MiB);
  return new Promise((resolve, reject) => {
    let written = 0;
    let sentAtResponse = -1;
    let done = false;
    const req = request(`${url}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN}`,
        "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
        "content-length": String(total),
      },
    });
    const write = (chunk: Buffer): boolean => {
      written += chunk.byteLength;
      return req.write(chunk);
    };
    let weightsSent = 0;
    let paused = false;
    const pump = (): void => {
      while (!done && sentAtResponse < 0) {
        if (weightsSent === 0 && written === 0) {
          write(lead);
          write(Buffer.from(weightsHead));
          weightsSent = weightsHead.byteLength;
          continue;
        }
        if (written >= PAUSE_AT && !paused) {
          // Waits for an answer here: one that comes means the trainer answered having received
          // at most PAUSE_AT bytes. Without one, the rest follows.
          paused = true;
          setTimeout(pump, PAUSE_MS);
          return;
        }
        if (weightsSent < weightsBytes) {
          const n = Math.min(zeros.byteLength, weightsBytes - weightsSent);
          weightsSent += n;
          if (!write(zeros.subarray(0, n))) {
            req.once("drain", pump);
            return;
          }
          continue;
        }
        write(tail);
        req.end();
        return;
      }
    };
    req.on("response", (res) => {
      sentAtResponse = written;
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => {
        done = true;
        req.destroy();
        resolve({
          status: res.statusCode ?? 0,
          text: Buffer.concat(parts).toString(),
          sentAtResponse,
          total,
        });
      });
    });
    // Once the trainer has answered it may close the connection under the rest of the body.
    req.on("error", (e) => {
      if (sentAtResponse < 0) reject(e);
    });
    pump();
  });
}

/**
 * The strict codec's own message for `bytes` followed by `padding` zero bytes (a stand-in for the
 * rest of a big file: the header's errors do not depend on its length), as the trainer words it.
 */
function codecMessage(bytes: Uint8Array, padding = 0): string {
  const decoded = decodeSafetensors(Buffer.concat([bytes, Buffer.alloc(padding)]));
  assert.ok(!decoded.ok, "the codec refuses it");
  return `adapter_model.safetensors: ${decoded.error.message}`;
}

describe("an upload with a bad safetensors header is refused while it streams", () => {
  let stack: Stack;
  let trainerTmp: string;
  const pid = (): number => stack.trainer.proc.pid as number;
  /** The trainer's upload temp dirs (tsx keeps its own cache there too). */
  const uploadDirs = (): string[] => readdirSync(trainerTmp).filter((f) => f.startsWith("loracast-upload-"));

  before(async () => {
    trainerTmp = mkdtempSync(join(tmpdir(), "loracast-trainer-tmp-"));
    stack = await startStack({ trainerEnv: { MAX_UPLOAD_MB: String(MAX_UPLOAD_MB), TMPDIR: trainerTmp } });
  });
  after(async () => {
    await stack?.stop();
    rmSync(trainerTmp, { recursive: true, force: true });
  });

  const entry = (dtype: string, shape: number[], offsets: [number, number]) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });
  const cases: [string, Buffer][] = [
    ["a length prefix past the header cap", head("{}", 1n << 40n)],
    ["a header that is not JSON", head('{"a": [1, 2')],
    ["an unknown dtype", head(JSON.stringify({ w: entry("Q4", [4], [0, 4]) }))],
    ["a shape that contradicts its data_offsets", head(JSON.stringify({ w: entry("F32", [4, 4], [0, 32]) }))],
    [
      "overlapping tensors",
      head(JSON.stringify({ a: entry("F32", [4], [0, 16]), b: entry("F32", [4], [8, 24]) })),
    ],
  ];

  for (const [what, bytes] of cases) {
    it(`refuses ${what} after a small part of a ${UPLOAD_BYTES / MiB} MiB body`, async () => {
      const idle = memory(pid()).rss;
      resetPeak(pid());
      const res = await upload(`${stack.trainer.url}/v1/runs/header/adapters`, bytes, UPLOAD_BYTES);
      const grown = memory(pid()).peak - idle;
      console.log(
        `${what}: answered ${res.status} after ${(res.sentAtResponse / MiB).toFixed(1)} of ${(res.total / MiB).toFixed(0)} MiB sent, peak RSS +${(grown / MiB).toFixed(1)} MiB`,
      );
      assert.equal(res.status, 400, res.text);
      const { error } = trainerErrorBodySchema.parse(JSON.parse(res.text));
      assert.equal(error.code, "invalid_adapter");
      assert.equal(error.message, codecMessage(bytes, MiB));
      assert.ok(
        res.sentAtResponse <= PAUSE_AT + MiB,
        `answered after ${res.sentAtResponse} of ${res.total} bytes`,
      );
      assert.ok(grown < 50 * MiB, `peak RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
      assert.deepEqual(uploadDirs(), [], "the trainer's temp dir holds nothing");
    });
  }

  it("refuses a file shorter than its declared header with the codec's text", async () => {
    const short = head('{"w": {}}', 1000n);
    const res = await upload(`${stack.trainer.url}/v1/runs/header/adapters`, short, short.byteLength);
    assert.equal(res.status, 400, res.text);
    const { error } = trainerErrorBodySchema.parse(JSON.parse(res.text));
    assert.equal(error.message, codecMessage(short));
    assert.match(error.message, /header length 1000 runs past the end of the 17-byte file/);
    assert.deepEqual(uploadDirs(), []);
  });

  it("answers a client that sends the whole body before reading (fetch) with the 400, not a reset", async () => {
    const bad = head(JSON.stringify({ w: entry("Q4", [4], [0, 4]) }));
    const weights = new Uint8Array(16 * MiB);
    weights.set(bad);
    for (let i = 0; i < 8; i++) {
      const form = new FormData();
      form.append("adapter_config.json", new Blob([CONFIG]), "adapter_config.json");
      form.append("adapter_model.safetensors", new Blob([weights]), "adapter_model.safetensors");
      const res = await fetch(`${stack.trainer.url}/v1/runs/header/adapters`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: form,
      });
      const text = await res.text();
      assert.equal(res.status, 400, text);
      assert.equal(trainerErrorBodySchema.parse(JSON.parse(text)).error.message, codecMessage(bad, MiB));
    }
    assert.deepEqual(uploadDirs(), []);
  });

  it("still publishes a good upload, and nothing was published before", async () => {
    const before = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/header/versions`)).json(),
    );
    assert.deepEqual(before.versions, [], "no refused upload was published");
    const res = await stack.publish("header", fixtureAdapter("llama-tiny"));
    assert.equal(res.status, 201, await res.clone().text());
    const after = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/header/versions`)).json(),
    );
    assert.equal(after.versions.length, 1);
    assert.deepEqual(uploadDirs(), []);
  });
});
