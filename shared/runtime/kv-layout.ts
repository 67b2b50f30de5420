/**
 * Re-batching KV caches when sequences join or leave a running batch. A row's `valid` keys are the
 * last `valid` of its cache's `length` columns (left padding, masked out: the `ops` graphs), or its
 * first `valid` (right padding: GroupQueryAttention graphs, whose rows start at column 0). Only
 * membership changes copy caches; a decode step feeds the previous step's output back as is.
 */
import * as ort from "onnxruntime-node";
import type { KvCacheDtype } from "../model-format/index.ts";
import type { KvCache, KvTensor } from "./kv-cache.ts";

/** One row of an existing cache, to be copied into a regrouped one. */
export interface RowSource {
  cache: KvCache;
  row: number;
  /** Leading padding columns of this row in `cache`. */
  pad: number;
}

/**
 * Where a row's keys sit among a cache's `length` columns: `left` padding, keys last (ending at
 * `length`); `right` padding, keys first (from column 0; GroupQueryAttention's layout).
 */
export type KvPadding = "left" | "right";

/** The per-layer cache geometry: layers, KV heads and head dimension, and its element type. */
export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The manifest's `decoder.kvCacheDtype` (float32 when absent). */
  dtype: KvCacheDtype;
}

/**
 * A host cache tensor's data: `Float32Array` for float32, `Uint16Array` (IEEE 754 binary16 bits,
 * as onnxruntime-node takes and returns float16 without `Float16Array`) for float16. Relayouts copy
 * elements as they are, so either is moved bit for bit.
 */
export type KvArray = Float32Array | Uint16Array;

/** A zeroed host array of `length` elements of `dtype` (`KvArray`). */
export function kvArray(dtype: KvCacheDtype, length: number): KvArray {
  return dtype === "float16" ? new Uint16Array(length) : new Float32Array(length);
}

/**
 * The host data of a cache tensor of `dtype`. Throws a RangeError for a tensor of another type:
 * copying float32 values into a float16 cache's Uint16Array would convert them as integers.
 */
export function kvData(t: ort.Tensor, dtype: KvCacheDtype): KvArray {
  if (t.type !== dtype) throw new RangeError(`a ${t.type} KV tensor in a ${dtype} cache`);
  return t.data as KvArray;
}

/**
 * A new cache whose row i is `sources[i]` (read by its cache's own padding), padded to the longest
 * row on the `padding` side, with `spare` unused columns after the `length` columns. Returns each
 * row's padding (`length` minus its keys), whichever side it is on. Elements are copied as they
 * are, in `shape.dtype`; a source tensor of another type is a RangeError (`kvData`).
 */
export function relayout(
  sources: readonly RowSource[],
  shape: KvShape,
  spare = 0,
  padding: KvPadding = "left",
): { cache: KvCache; pads: number[] } {
  const { layers, kvHeads, headDim: d, dtype } = shape;
  const valid = sources.map((s) => s.cache.length - s.pad);
  const length = Math.max(0, ...valid);
  const capacity = length + spare;
  const batch = sources.length;
  const copyLayer = (pick: (c: KvCache) => KvTensor[], layer: number): ort.Tensor => {
    const dst = kvArray(dtype, batch * kvHeads * capacity * d);
    sources.forEach((s, r) => {
      const src = kvData(pick(s.cache)[layer] as ort.Tensor, dtype);
      const stride = s.cache.capacity;
      const n = valid[r] ?? 0;
      const first = s.cache.padding === "left" ? s.pad : 0;
      const at = padding === "left" ? length - n : 0;
      for (let h = 0; h < kvHeads; h++) {
        const from = ((s.row * kvHeads + h) * stride + first) * d;
        const to = ((r * kvHeads + h) * capacity + at) * d;
        dst.set(src.subarray(from, from + n * d), to);
      }
    });
    return new ort.Tensor(dtype, dst, [batch, kvHeads, capacity, d]);
  };
  const cache: KvCache = {
    batch,
    length,
    capacity,
    padding,
    keys: Array.from({ length: layers }, (_, l) => copyLayer((c) => c.keys, l)),
    values: Array.from({ length: layers }, (_, l) => copyLayer((c) => c.values, l)),
  };
  return { cache, pads: valid.map((n) => length - n) };
}
