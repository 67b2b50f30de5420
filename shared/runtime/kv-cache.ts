/**
 * The KV cache a `DecoderSession` step takes and returns (`KvCache`), and how a host cache takes an
 * append graph's new keys and values (`appendToHostCache`): written into its spare columns, moved
 * to larger buffers when they run out.
 */
import type * as ort from "onnxruntime-node";
import { IO } from "../model-format/index.ts";
import type { DeviceTensor } from "../ort-native/index.ts";
import { type KvPadding, type KvShape, kvData, relayout } from "./kv-layout.ts";

/**
 * Keys and values of every layer, `[batch, kvHeads, capacity, headDim]` each. Rows are padded to
 * `length` columns on the `padding` side: left (every row's keys end at column `length`; the `ops`
 * graphs, which mask the padding) or right (every row's keys start at column 0; GroupQueryAttention
 * graphs, told each row's length by `seqlens_k`). Either way a row's padding is `length` minus its
 * keys, the `pads` that `regroup` returns and callers' masks are built from.
 *
 * Two kinds, by the graph the session runs (docs/architecture.md, "The KV cache"):
 * - On the CPU, the session owns the cache in host buffers with spare columns (`capacity` >
 *   `length`), which the graph sees masked out. A step writes its new keys and values into the
 *   spare columns of the cache it was given and returns that same cache, longer; when the spare
 *   columns run out it moves to larger buffers.
 * - On the WebGPU EP, each step returns a new cache of exactly `length` columns that stays in GPU
 *   memory (`location: "gpu-buffer"`): feeding it back as the next past costs no copy. Such a cache
 *   must be given to `DecoderSession.free` once dropped, or copied to the host with `toHost` (which
 *   frees it) before its data is read.
 * - On the ort-native backend (CUDA, or CPU on request), the same, in the addon's `DeviceTensor`s.
 */
export interface KvCache {
  batch: number;
  length: number;
  capacity: number;
  padding: KvPadding;
  keys: KvTensor[];
  values: KvTensor[];
}

/**
 * One layer's keys or values: an onnxruntime-node tensor (host memory, or a WebGPU buffer) or an
 * ort-native device tensor. Host data is readable only from `ort.Tensor`s at location `cpu`.
 */
export type KvTensor = ort.Tensor | DeviceTensor;

/** Spare columns a host cache gets when it is made or outgrows its buffers. */
export const SPARE_COLUMNS = 64;

/** What `appendToHostCache` writes, and where. */
export interface HostAppend {
  /** The host cache before the step (spare columns included); reused when it has room. */
  past: KvCache;
  /** New tokens per row this step. */
  seq: number;
  /** The step's output by name (`appended.*`): `[batch, kvHeads, seq, headDim]` host tensors. */
  output: (name: string) => KvTensor;
  /** The cache's geometry, `DecoderSession.kvShape`. */
  shape: KvShape;
  /** The side rows are padded on (the session's). */
  padding: KvPadding;
  /**
   * Right padding (GQA): each row's keys before the step, where its new keys go (`GqaStep.pastRows`);
   * null for left padding, where every row's go after the cache's `length` columns.
   */
  pastRows: readonly number[] | null;
}

/**
 * The cache with the step's new keys and values of every layer (`IO.appendedKey`,
 * `IO.appendedValue`) written after each row's keys, `length` grown by `seq`: `past` itself when
 * its spare columns hold them, else a copy with `SPARE_COLUMNS` more columns than it needs. The
 * append graph runs on onnxruntime-node over host caches only: every tensor is an `ort.Tensor` in
 * host memory.
 */
export function appendToHostCache({ past, seq, output, shape, padding, pastRows }: HostAppend): KvCache {
  const total = past.length + seq;
  const cache = total <= past.capacity ? past : grow(past, total + SPARE_COLUMNS, shape, padding);
  const { layers, kvHeads, headDim: d, dtype } = shape;
  const batch = past.batch;
  // Left padding: every row's new keys go after the cache's `length` columns; right padding
  // (GQA): after the row's own keys.
  const column = (b: number) => pastRows?.[b] ?? past.length;
  const write = (dst: KvTensor, src: KvTensor) => {
    const to = kvData(dst as ort.Tensor, dtype);
    const from = kvData(src as ort.Tensor, dtype);
    for (let row = 0; row < batch * kvHeads; row++) {
      const at = (row * cache.capacity + column(Math.floor(row / kvHeads))) * d;
      to.set(from.subarray(row * seq * d, (row + 1) * seq * d), at);
    }
  };
  for (let l = 0; l < layers; l++) {
    write(cache.keys[l] as KvTensor, output(IO.appendedKey(l)));
    write(cache.values[l] as KvTensor, output(IO.appendedValue(l)));
  }
  cache.length = total;
  return cache;
}

/** A host cache with the rows of `cache` and room for `capacity` columns. */
function grow(cache: KvCache, capacity: number, shape: KvShape, padding: KvPadding): KvCache {
  const rows = Array.from({ length: cache.batch }, (_, row) => ({ cache, row, pad: 0 }));
  return relayout(rows, shape, capacity - cache.length, padding).cache;
}
