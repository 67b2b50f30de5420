import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import {
  decodeHeader,
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  safetensorsHeaderGuard,
} from "./index.ts";

/** Streams `bytes` in `chunk`-byte pieces through the guard; resolves to what came out and how much went in. */
async function guard(bytes: Uint8Array, chunk: number, maxFileBytes = 1 << 20) {
  let fed = 0;
  const source = Readable.from(
    (function* () {
      for (let at = 0; at < bytes.byteLength; at += chunk) {
        fed = at + chunk;
        yield Buffer.from(bytes.subarray(at, at + chunk));
      }
    })(),
  );
  const out: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, done) {
      out.push(c);
      done();
    },
  });
  const error = await pipeline(source, safetensorsHeaderGuard(maxFileBytes), sink).then(
    () => null,
    (e: unknown) => e,
  );
  return { out: Buffer.concat(out), error, fed };
}

function withHeader(header: string, data = 64, declared = BigInt(Buffer.byteLength(header))): Uint8Array {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declared);
  return Buffer.concat([prefix, Buffer.from(header), Buffer.alloc(data)]);
}

describe("safetensorsHeaderGuard", () => {
  const good = encodeSafetensors({ a: { dtype: "F32", shape: [2, 3], data: new Float32Array(6) } });

  it("passes a valid file through unchanged, in any chunking", async () => {
    for (const chunk of [1, 7, 4096]) {
      const r = await guard(good, chunk);
      assert.equal(r.error, null);
      assert.deepEqual(new Uint8Array(r.out), good);
    }
  });

  it("fails with the codec's error as soon as the header has arrived", async () => {
    const bad = withHeader(
      JSON.stringify({ w: { dtype: "F32", shape: [4], data_offsets: [0, 8] } }),
      100_000,
    );
    const r = await guard(bad, 16);
    assert.ok(r.error instanceof SafetensorsError);
    const codec = decodeSafetensors(bad);
    assert.ok(!codec.ok);
    assert.equal(r.error.message, codec.error.message);
    // The source reads a little ahead (16 chunks), not on to the end.
    assert.ok(r.fed < 1000, `read ${r.fed} bytes of ${bad.byteLength}`);
  });

  it("refuses a header length that cannot fit the file's bound after 8 bytes", async () => {
    const r = await guard(withHeader("{}", 100_000, 5000n), 8, 1000);
    assert.ok(r.error instanceof SafetensorsError);
    assert.equal(r.error.code, "header_too_large");
    assert.equal(r.out.byteLength, 0, "not one byte passed");
    assert.ok(r.fed < 1000, `read ${r.fed} bytes`);
  });

  it("names how short a file is that ends inside its header", async () => {
    const short = withHeader("{}", 0, 100n);
    const r = await guard(short, 3);
    const codec = decodeSafetensors(short);
    assert.ok(!codec.ok && r.error instanceof SafetensorsError);
    assert.equal(r.error.message, codec.error.message);
  });

  it("decodeHeader reports the data section the tensors cover", () => {
    const h = decodeHeader(good);
    assert.ok(h.ok);
    assert.equal(h.value.dataLength, 24);
    assert.equal(h.value.dataStart + h.value.dataLength, good.byteLength);
  });
});
