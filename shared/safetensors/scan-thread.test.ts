import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeSafetensors,
  encodeSafetensors,
  scanFloats,
  scanFloatsConcurrent,
  toFloat16,
} from "./index.ts";

/** A file of F32 tensors (one with NaN, one with -Inf, one finite), an F16 one and a U8 one. */
function file(shared: boolean) {
  const finite = Float32Array.from([0.5, -3e38, 1e-7, -0, 2]);
  const nan = Float32Array.from([1, 2, Number.NaN, 4]);
  const inf = Float32Array.from([1, Number.NEGATIVE_INFINITY, 3]);
  const bytes = encodeSafetensors(
    {
      finite: { dtype: "F32", shape: [5], data: finite },
      half: { dtype: "F16", shape: [3], data: toFloat16(Float32Array.from([1, -6, 2])) },
      inf: { dtype: "F32", shape: [3], data: inf },
      nan: { dtype: "F32", shape: [4], data: nan },
      bytes: { dtype: "U8", shape: [3], data: new Uint8Array(3) },
    },
    undefined,
    shared ? (size) => new Uint8Array(new SharedArrayBuffer(size)) : undefined,
  );
  const decoded = decodeSafetensors(bytes);
  if (!decoded.ok) throw decoded.error;
  return decoded.value;
}

describe("scanFloatsConcurrent", () => {
  it("answers what scanFloats answers for every tensor, in shared memory (a worker) or not", async () => {
    for (const shared of [true, false]) {
      const f = file(shared);
      const scans = await scanFloatsConcurrent(f);
      assert.deepEqual([...scans.keys()].sort(), [...f.tensors.keys()].sort());
      for (const [name, t] of f.tensors)
        assert.deepEqual(scans.get(name), scanFloats(t), `${name}, shared ${shared}`);
      assert.deepEqual(scans.get("nan")?.nonFinite, { index: 2, value: "NaN" });
      assert.deepEqual(scans.get("inf")?.nonFinite, { index: 1, value: "-Inf" });
      assert.equal(scans.get("finite")?.largestAbs, Math.fround(3e38));
      assert.equal(scans.get("half")?.largestAbs, 6);
    }
  });

  it("leaves the calling thread free while a worker scans a shared buffer", async () => {
    const data = new Float32Array(16 * 2 ** 20).fill(0.25);
    data[data.length - 1] = -7;
    const bytes = encodeSafetensors(
      { t: { dtype: "F32", shape: [data.length], data } },
      undefined,
      (size) => new Uint8Array(new SharedArrayBuffer(size)),
    );
    const f = decodeSafetensors(bytes);
    if (!f.ok) throw f.error;
    const pending = scanFloatsConcurrent(f.value);
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await Promise.resolve();
    assert.equal(settled, false, "the scan is not done on this thread before the call returns");
    assert.deepEqual((await pending).get("t"), { nonFinite: null, largestAbs: 7 });
  });
});
