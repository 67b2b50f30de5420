import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeSafetensors,
  encodeSafetensors,
  firstNonFinite,
  scanFloats,
  type TensorView,
  toFloat16,
} from "./index.ts";

function tensor(dtype: "F32" | "F16" | "BF16", data: Float32Array | Uint16Array, pad = false): TensorView {
  const tensors = {
    // An odd-sized first tensor leaves the second unaligned for its words.
    ...(pad ? { pad: { dtype: "U8" as const, shape: [3], data: new Uint8Array(3) } } : {}),
    t: { dtype, shape: [data.length], data },
  };
  const f = decodeSafetensors(encodeSafetensors(tensors));
  if (!f.ok) throw f.error;
  return f.value.tensors.get("t") as TensorView;
}

/** float32 → bfloat16 bits by truncation (exact for the values below). */
const bf16 = (values: number[]) =>
  Uint16Array.from(new Uint32Array(Float32Array.from(values).buffer), (w) => w >>> 16);

describe("firstNonFinite", () => {
  const finite = [0, -0, 1.5, -2, 65504, 1e-7, 3e38, -3e38];

  it("scans a tensor of a Node Buffer whose data starts 2 bytes off a word (an upload's bytes)", () => {
    // Buffer#slice is a view, not a copy, so an unaligned view must be copied another way.
    const file = encodeSafetensors({
      pad: { dtype: "F16", shape: [1], data: new Uint16Array(1) },
      t: { dtype: "F16", shape: [3], data: toFloat16(Float32Array.from([1, Number.NaN, 2])) },
    });
    const f = decodeSafetensors(Buffer.from(file));
    if (!f.ok) throw f.error;
    const t = f.value.tensors.get("t") as TensorView;
    assert.equal(t.bytes.byteOffset % 4, 2);
    assert.deepEqual(firstNonFinite(t), { index: 1, value: "NaN" });
  });

  it("passes finite F32, F16 and BF16 tensors, extremes and subnormals included", () => {
    assert.equal(firstNonFinite(tensor("F32", Float32Array.from([...finite, 1e-45]))), null);
    assert.equal(
      firstNonFinite(tensor("F16", toFloat16(Float32Array.from([0, -0, 65504, -65504, 6e-8])))),
      null,
    );
    assert.equal(firstNonFinite(tensor("BF16", bf16(finite))), null);
  });

  it("finds the first NaN, +Inf or -Inf in each float dtype, aligned or not", () => {
    for (const pad of [false, true]) {
      for (const [value, name] of [
        [Number.NaN, "NaN"],
        [Number.POSITIVE_INFINITY, "+Inf"],
        [Number.NEGATIVE_INFINITY, "-Inf"],
      ] as const) {
        const values = [...finite, value, Number.NaN];
        const want = { index: finite.length, value: name };
        assert.deepEqual(firstNonFinite(tensor("F32", Float32Array.from(values), pad)), want, `F32 ${name}`);
        assert.deepEqual(firstNonFinite(tensor("BF16", bf16(values), pad)), want, `BF16 ${name}`);
        const half = toFloat16(Float32Array.from([1, 2, value, 0]));
        assert.deepEqual(firstNonFinite(tensor("F16", half, pad)), { index: 2, value: name }, `F16 ${name}`);
        // An odd element count: the last element has no partner in a 32-bit word.
        const odd = tensor("BF16", bf16([1, 2, value]), pad);
        assert.deepEqual(firstNonFinite(odd), { index: 2, value: name }, `BF16 odd ${name}`);
      }
    }
  });

  it("treats every NaN payload as NaN, not as an infinity", () => {
    // Signalling NaN and a negative quiet NaN with a payload.
    const words = Uint32Array.from([0x7f800001, 0xffc00123]);
    const f32 = tensor("F32", new Float32Array(words.buffer));
    assert.deepEqual(firstNonFinite(f32), { index: 0, value: "NaN" });
    assert.deepEqual(firstNonFinite(tensor("F16", Uint16Array.from([0, 0xfc01]))), {
      index: 1,
      value: "NaN",
    });
  });
});

describe("scanFloats", () => {
  it("gives the largest magnitude of a finite tensor, in every float dtype, aligned or not", () => {
    // Random values over many binades, negative ones largest in magnitude half the time.
    let state = 7;
    const next = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    for (let trial = 0; trial < 20; trial++) {
      const values = Float32Array.from({ length: 257 }, () => (next() - 0.5) * 2 ** (next() * 60 - 30));
      const want = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (const pad of [false, true]) {
        assert.deepEqual(scanFloats(tensor("F32", values, pad)), { nonFinite: null, largestAbs: want });
      }
    }
    assert.deepEqual(scanFloats(tensor("F32", Float32Array.from([-0, 1e-45, -3e38, 0]))), {
      nonFinite: null,
      largestAbs: Math.fround(3e38),
    });
    assert.deepEqual(scanFloats(tensor("F32", new Float32Array(0))), { nonFinite: null, largestAbs: 0 });
    assert.deepEqual(scanFloats(tensor("BF16", bf16([1, -2.5, 0.25]), true)), {
      nonFinite: null,
      largestAbs: 2.5,
    });
    assert.deepEqual(scanFloats(tensor("F16", toFloat16(Float32Array.from([0.5, -65504])))), {
      nonFinite: null,
      largestAbs: 65504,
    });
  });

  it("reports the first non-finite element as firstNonFinite does", () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (const pad of [false, true]) {
        const t = tensor("F32", Float32Array.from([1, -3e38, value, Number.NaN, 2]), pad);
        assert.deepEqual(scanFloats(t).nonFinite, firstNonFinite(t));
        assert.notEqual(scanFloats(t).nonFinite, null);
        const b = tensor("BF16", bf16([1, value]), pad);
        assert.deepEqual(scanFloats(b).nonFinite, { index: 1, value: firstNonFinite(b)?.value });
      }
    }
  });
});
