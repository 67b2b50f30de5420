import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRng } from "../random/index.ts";
import { sha256Hex } from "./blobs.ts";
import { sha256Concurrent, sharedBytes } from "./sha256-thread.ts";

/** `size` seeded pseudo-random bytes in a SharedArrayBuffer (`shared`) or a plain buffer. */
function bytes(size: number, seed: number, shared: boolean): Uint8Array {
  const rng = createRng(seed);
  const out = shared ? sharedBytes(size) : new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rng.next() * 256);
  return out;
}

describe("sha256Concurrent", () => {
  it("gives node's sha256 for shared and plain buffers, empty, odd-sized and views at an offset", async () => {
    for (const shared of [true, false]) {
      for (const size of [0, 1, 63, 64, 65, 100_003]) {
        const b = bytes(size, size + 1, shared);
        assert.equal(await sha256Concurrent(b), sha256Hex(b), `${size} bytes, shared ${shared}`);
      }
      const host = bytes(1000, 7, shared);
      const view = host.subarray(13, 513);
      assert.equal(await sha256Concurrent(view), sha256Hex(view), `a view, shared ${shared}`);
    }
    // The known digest of "abc" (FIPS 180-2, appendix B.1), through the worker.
    const abc = sharedBytes(3);
    abc.set([0x61, 0x62, 0x63]);
    assert.equal(
      await sha256Concurrent(abc),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  it("answers each of many concurrent calls with its own buffer's digest", async () => {
    const inputs = Array.from({ length: 24 }, (_, i) => bytes(1000 + i * 37, 100 + i, true));
    const got = await Promise.all(inputs.map((b) => sha256Concurrent(b)));
    assert.deepEqual(
      got,
      inputs.map((b) => sha256Hex(b)),
    );
    assert.equal(new Set(got).size, inputs.length);
  });

  it("leaves the calling thread free while it hashes a shared buffer", async () => {
    const big = sharedBytes(64 * 2 ** 20);
    const pending = sha256Concurrent(big);
    // The promise is not yet settled when the call returns: the digest is computed elsewhere.
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await Promise.resolve();
    assert.equal(settled, false);
    assert.equal(await pending, sha256Hex(big));
  });
});
