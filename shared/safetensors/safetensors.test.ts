import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsError,
  toFloat16,
  toFloat32,
} from "./index.ts";

const FIXTURE = join(fixture("llama-tiny"), "adapter", "adapter_model.safetensors");

/** Builds a file from a raw header object and a data section, bypassing the encoder's checks. */
function rawFile(header: unknown, data: Uint8Array | number = 0): Uint8Array {
  const json =
    header instanceof Uint8Array
      ? header
      : new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

function decodeError(buf: Uint8Array): SafetensorsError {
  const r = decodeSafetensors(buf);
  assert.equal(r.ok, false, "expected the file to be refused");
  if (r.ok) throw new Error("unreachable");
  return r.error;
}

describe("safetensors round trip", () => {
  it("encodes and decodes every dtype with its values", () => {
    const f32 = new Float32Array([1.5, -2, 3.25, 0, 7, 8]);
    const i64 = new BigInt64Array([1n, -(2n ** 62n)]);
    const tensors = {
      "a.f32": { dtype: "F32" as const, shape: [2, 3], data: f32 },
      "b.i64": { dtype: "I64" as const, shape: [2], data: i64 },
      "c.f64": { dtype: "F64" as const, shape: [1], data: new Float64Array([Math.PI]) },
      "d.f16": { dtype: "F16" as const, shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0]) },
      "e.bf16": { dtype: "BF16" as const, shape: [1], data: new Uint16Array([0x3f80]) },
      "f.i32": { dtype: "I32" as const, shape: [1, 1], data: new Int32Array([-5]) },
      "g.i16": { dtype: "I16" as const, shape: [2], data: new Int16Array([-1, 300]) },
      "h.i8": { dtype: "I8" as const, shape: [2], data: new Int8Array([-128, 127]) },
      "i.u8": { dtype: "U8" as const, shape: [3], data: new Uint8Array([0, 128, 255]) },
      "j.bool": { dtype: "BOOL" as const, shape: [2], data: new Uint8Array([1, 0]) },
      "k.empty": { dtype: "F32" as const, shape: [0, 4], data: new Float32Array(0) },
      "l.scalar": { dtype: "F32" as const, shape: [], data: new Float32Array([42]) },
    };
    const bytes = encodeSafetensors(tensors, { format: "pt" });
    const r = decodeSafetensors(bytes);
    assert.ok(r.ok);
    assert.deepEqual(r.value.metadata, { format: "pt" });
    assert.equal(r.value.dataStart % 8, 0, "header is padded to 8 bytes");
    assert.equal(r.value.tensors.size, Object.keys(tensors).length);
    for (const [name, input] of Object.entries(tensors)) {
      const t = r.value.tensors.get(name);
      assert.ok(t, name);
      assert.equal(t.dtype, input.dtype);
      assert.deepEqual(t.shape, input.shape);
      assert.deepEqual(
        Array.from(t.array() as ArrayLike<number | bigint>),
        Array.from(input.data as ArrayLike<number | bigint>),
      );
    }
  });

  it("returns zero-copy views into the input buffer", () => {
    const bytes = encodeSafetensors({
      w: { dtype: "F32", shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    });
    const r = decodeSafetensors(bytes);
    assert.ok(r.ok);
    const t = r.value.tensors.get("w");
    assert.ok(t);
    assert.equal(t.bytes.buffer, bytes.buffer);
    const arr = t.array() as Float32Array;
    assert.equal(arr.buffer, bytes.buffer);
    bytes[r.value.dataStart] = 0;
    bytes[r.value.dataStart + 1] = 0;
    bytes[r.value.dataStart + 2] = 0;
    bytes[r.value.dataStart + 3] = 0;
    assert.equal(arr[0], 0, "the view sees writes to the underlying buffer");
  });

  it("copies only when a typed view would be misaligned", () => {
    const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([5, 6]) } });
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    const r = decodeSafetensors(shifted);
    assert.ok(r.ok);
    assert.deepEqual(Array.from((r.value.tensors.get("w")?.array() ?? []) as ArrayLike<unknown>), [5, 6]);
  });

  it("decodes the PEFT reference adapter written by the Python library", () => {
    const r = decodeSafetensors(readFileSync(FIXTURE));
    assert.ok(r.ok);
    const a = r.value.tensors.get("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
    assert.ok(a);
    assert.deepEqual(a.shape, [8, 176]);
    assert.equal(r.value.tensors.size, 28);
    assert.equal(r.value.metadata.format, "pt");
  });

  it("encodes into a buffer of the exact size in place, every byte rewritten, and into nothing else", () => {
    const tensors = {
      w: { dtype: "F32" as const, shape: [3, 2], data: Float32Array.from([1, -2, 3, -4, 5, -6]) },
      h: { dtype: "F16" as const, shape: [3], data: toFloat16(Float32Array.from([0.5, 1, 2])) },
    };
    const fresh = encodeSafetensors(tensors, { format: "pt" });
    // A dirty buffer, and a view at an offset into a larger one (a Node Buffer pool's slice).
    const dirty = new Uint8Array(fresh.byteLength).fill(0xab);
    const host = new Uint8Array(fresh.byteLength + 16).fill(0xcd);
    const view = host.subarray(8, 8 + fresh.byteLength);
    for (const into of [dirty, view]) {
      const out = encodeSafetensors(tensors, { format: "pt" }, into);
      assert.equal(out, into, "the buffer given is the one returned");
      assert.deepEqual(out, fresh);
    }
    assert.deepEqual(
      [...host.subarray(0, 8), ...host.subarray(8 + fresh.byteLength)],
      new Array(16).fill(0xcd),
    );
    const small = new Uint8Array(fresh.byteLength - 1).fill(7);
    const other = encodeSafetensors(tensors, { format: "pt" }, small);
    assert.notEqual(other, small);
    assert.deepEqual(other, fresh);
    assert.ok(
      small.every((b) => b === 7),
      "a buffer of another size is left alone",
    );
  });

  it("encodes into the buffer an allocator gives for the encoded size, and refuses one of another size", () => {
    const tensors = { w: { dtype: "F32" as const, shape: [2], data: Float32Array.from([1, -2]) } };
    const fresh = encodeSafetensors(tensors, { format: "pt" });
    const sizes: number[] = [];
    const shared = new Uint8Array(new SharedArrayBuffer(fresh.byteLength)).fill(0xab);
    const out = encodeSafetensors(tensors, { format: "pt" }, (size) => {
      sizes.push(size);
      return shared;
    });
    assert.equal(out, shared);
    assert.deepEqual(sizes, [fresh.byteLength]);
    assert.deepEqual(new Uint8Array(out), fresh);
    assert.throws(
      () => encodeSafetensors(tensors, { format: "pt" }, (size) => new Uint8Array(size + 1)),
      /allocator gave \d+ bytes for a \d+-byte file/,
    );
  });

  it("refuses to encode data whose size does not match its shape", () => {
    assert.throws(
      () => encodeSafetensors({ w: { dtype: "F32", shape: [3], data: new Float32Array(2) } }),
      /tensor `w`: shape \[3\] of F32 needs 12 bytes, got 8/,
    );
  });
});

describe("safetensors validation", () => {
  const good = { x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };

  it("refuses a file shorter than the length prefix", () => {
    assert.equal(decodeError(new Uint8Array(5)).code, "truncated");
  });

  it("refuses a header length past the end of the file", () => {
    const buf = rawFile(good, 8).subarray(0, 20);
    const e = decodeError(buf);
    assert.equal(e.code, "truncated");
  });

  it("refuses a huge header length before reading it", () => {
    const buf = new Uint8Array(16);
    new DataView(buf.buffer).setBigUint64(0, 2n ** 60n, true);
    const e = decodeError(buf);
    assert.equal(e.code, "header_too_large");
    const small = decodeSafetensors(rawFile(good, 8), { maxHeaderBytes: 10 });
    assert.equal(small.ok ? "ok" : small.error.code, "header_too_large");
  });

  it("refuses a truncated data section", () => {
    const e = decodeError(rawFile(good, 4));
    assert.equal(e.code, "invalid_offsets");
    assert.equal(e.tensor, "x");
  });

  it("refuses trailing bytes nobody accounts for", () => {
    assert.equal(decodeError(rawFile(good, 12)).code, "invalid_offsets");
  });

  it("refuses overlapping offsets and names the tensor", () => {
    const e = decodeError(
      rawFile(
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        12,
      ),
    );
    assert.equal(e.code, "invalid_offsets");
    assert.equal(e.tensor, "b");
    assert.match(e.message, /overlaps/);
  });

  it("refuses gaps between tensors", () => {
    const e = decodeError(
      rawFile(
        {
          a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
        },
        12,
      ),
    );
    assert.match(e.message, /gap/);
  });

  it("refuses an unknown dtype, naming the tensor", () => {
    const e = decodeError(rawFile({ w: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, 1));
    assert.equal(e.code, "invalid_dtype");
    assert.match(e.message, /tensor `w`: unsupported dtype "F8_E4M3"/);
  });

  it("refuses a shape whose size does not match the span", () => {
    const e = decodeError(rawFile({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8));
    assert.equal(e.code, "size_mismatch");
    assert.match(e.message, /needs 12 bytes but data_offsets span 8/);
  });

  it("refuses a shape so large it would overflow", () => {
    const e = decodeError(rawFile({ w: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 0] } }));
    assert.equal(e.code, "size_mismatch");
  });

  it("refuses negative, fractional and non-numeric dimensions", () => {
    for (const shape of [[-1], [1.5], ["2"], "2"]) {
      const e = decodeError(rawFile({ w: { dtype: "U8", shape, data_offsets: [0, 2] } }, 2));
      assert.equal(e.code, "invalid_shape", JSON.stringify(shape));
    }
  });

  it("refuses duplicate keys, which JSON.parse would silently merge", () => {
    const header =
      '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    assert.equal(decodeError(rawFile(header, 1)).code, "duplicate_key");
    const nested = '{"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    assert.equal(decodeError(rawFile(nested, 1)).code, "duplicate_key");
  });

  it("refuses non-string metadata values", () => {
    const e = decodeError(rawFile({ __metadata__: { format: 1 }, ...good }, 8));
    assert.equal(e.code, "invalid_metadata");
  });

  it("refuses unknown entry fields, non-object headers and broken JSON", () => {
    assert.equal(decodeError(rawFile({ w: { ...good.x, extra: 1 } }, 8)).code, "invalid_entry");
    assert.equal(decodeError(rawFile("[1,2]")).code, "invalid_json");
    assert.equal(decodeError(rawFile('{"w": ')).code, "invalid_json");
    assert.equal(decodeError(rawFile(new Uint8Array([0x7b, 0xff, 0x7d]))).code, "invalid_json");
  });

  it("accepts a header with trailing space padding", () => {
    const r = decodeSafetensors(rawFile(`${JSON.stringify(good)}      `, 8));
    assert.ok(r.ok);
  });
});

describe("float conversion", () => {
  const halves = (bits: number[]) => new Uint8Array(new Uint16Array(bits).buffer);

  it("F16 → float32 → F16 is the identity on every non-NaN half", () => {
    const all = Array.from({ length: 0x10000 }, (_, i) => i).filter(
      (h) => (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0,
    );
    const back = toFloat16(toFloat32("F16", halves(all)));
    assert.deepEqual([...back], all);
  });

  it("rounds to nearest even, overflows to infinity and underflows to signed zero", () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: ties to even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between 1+2^-10 and 1+2^-9: ties to even (up)
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway
      [65520, 0x7c00], // rounds past the largest half
      [2 ** -25, 0x0000], // half of the smallest subnormal: ties to even (zero)
      [3 * 2 ** -26, 0x0001], // above that: the smallest subnormal
      [-(2 ** -30), 0x8000],
      [Number.NaN, 0x7e00],
    ];
    for (const [v, want] of cases) assert.equal(toFloat16(Float32Array.of(v))[0], want, `${v}`);
  });
});
