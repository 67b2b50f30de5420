import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import type { KvCacheDtype } from "../model-format/index.ts";
import type { KvCache } from "./kv-cache.ts";
import { type KvPadding, type KvShape, kvArray, relayout } from "./kv-layout.ts";

const shape = (dtype: KvCacheDtype): KvShape => ({ layers: 2, kvHeads: 2, headDim: 4, dtype });

/**
 * A cache of `batch` rows whose element at (layer, kind, row, head, column, i) is a distinct code
 * (float16 bit patterns as they are, float32 values exactly representable), so every copy is
 * traceable to its source; `length` columns padded on `padding`'s side, `capacity` in all.
 */
function cache(
  dtype: KvCacheDtype,
  batch: number,
  length: number,
  capacity: number,
  padding: KvPadding,
): KvCache {
  const { layers, kvHeads, headDim: d } = shape(dtype);
  const make = (layer: number, kind: number) => {
    const data = kvArray(dtype, batch * kvHeads * capacity * d);
    for (let i = 0; i < data.length; i++) data[i] = 1 + (((layer * 2 + kind) * 4096 + i) % 30000);
    return new ort.Tensor(dtype, data, [batch, kvHeads, capacity, d]);
  };
  return {
    batch,
    length,
    capacity,
    padding,
    keys: Array.from({ length: layers }, (_, l) => make(l, 0)),
    values: Array.from({ length: layers }, (_, l) => make(l, 1)),
  };
}

/** Row `row`'s keys of one layer and head: `n` columns of `d` elements starting at column `from`. */
const columns = (t: ort.Tensor, row: number, head: number, from: number, n: number) => {
  const [, kvHeads = 0, capacity = 0, d = 0] = t.dims;
  const at = ((row * kvHeads + head) * capacity + from) * d;
  return Array.from((t.data as Float32Array | Uint16Array).subarray(at, at + n * d));
};

describe("relayout of float32 and float16 caches", () => {
  for (const dtype of ["float32", "float16"] as const) {
    it(`${dtype}: moves each row's keys element for element to the new padding side, with spare columns`, () => {
      // Row 0 of a left-padded cache: 3 keys after 2 padding columns; row 1 of a right-padded one: 4 keys.
      const left = cache(dtype, 1, 5, 5, "left");
      const right = cache(dtype, 2, 4, 6, "right");
      const { cache: out, pads } = relayout(
        [
          { cache: left, row: 0, pad: 2 },
          { cache: right, row: 1, pad: 0 },
        ],
        shape(dtype),
        3,
        "right",
      );
      assert.deepEqual(pads, [1, 0]);
      assert.deepEqual([out.batch, out.length, out.capacity, out.padding], [2, 4, 7, "right"]);
      for (let l = 0; l < 2; l++) {
        const k = out.keys[l] as ort.Tensor;
        assert.equal(k.type, dtype);
        assert.ok(k.data instanceof (dtype === "float16" ? Uint16Array : Float32Array));
        for (let h = 0; h < 2; h++) {
          assert.deepEqual(columns(k, 0, h, 0, 3), columns(left.keys[l] as ort.Tensor, 0, h, 2, 3));
          assert.deepEqual(columns(k, 1, h, 0, 4), columns(right.keys[l] as ort.Tensor, 1, h, 0, 4));
          assert.deepEqual(
            columns(out.values[l] as ort.Tensor, 1, h, 0, 4),
            columns(right.values[l] as ort.Tensor, 1, h, 0, 4),
          );
          // Spare and padding columns stay zero.
          assert.ok(columns(k, 0, h, 3, 4).every((x) => x === 0));
        }
      }
    });
  }

  it("refuses a source whose element type is not the cache's", () => {
    const half = cache("float16", 1, 2, 2, "right");
    assert.throws(
      () => relayout([{ cache: half, row: 0, pad: 0 }], shape("float32"), 0, "right"),
      /a float16 KV tensor in a float32 cache/,
    );
  });
});
