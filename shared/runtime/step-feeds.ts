/**
 * A decoder step's contract (`StepInput`, `StepOutput`) and its feeds as the graphs take them
 * (`stepFeeds`): the `ops` graphs' mask and positions, or GroupQueryAttention's right-padded rows
 * and lengths (`gqa-step.ts`), and every layer's past keys and values.
 */
import * as ort from "onnxruntime-node";
import { IO } from "../model-format/index.ts";
import type { StepFeeds } from "./decoder-runner.ts";
import { type GqaStep, toGqaStep } from "./gqa-step.ts";
import type { KvCache, KvTensor } from "./kv-cache.ts";
import type { KvPadding } from "./kv-layout.ts";

/**
 * One decoder step for `batch` rows of `seq` new tokens each (a prefill, or one token per row when
 * decoding), on top of the rows' `past` cache (null: nothing yet).
 */
export interface StepInput {
  batch: number;
  /** New tokens per row this step. */
  seq: number;
  /** int64 [batch, seq] */
  inputIds: BigInt64Array;
  /** int64 [batch, past + seq]: 1 for real tokens, 0 for padding */
  attentionMask: BigInt64Array;
  /** int64 [batch, seq] */
  positionIds: BigInt64Array;
  /** int64 [batch, k]: positions within this step's tokens whose logits to return */
  logitsPositions: BigInt64Array;
  logitsCount: number;
  past: KvCache | null;
}

/**
 * What a step returns: float32 logits `[batch, logitsCount, vocab]` at the requested positions, and
 * the cache with this step's keys and values added.
 */
export interface StepOutput {
  /** [batch, logitsCount, vocab] */
  logits: Float32Array;
  present: KvCache;
}

/**
 * The feeds of `input` over `past` (its cache, or an empty one), all but the LoRA factors:
 * `input_ids` and `logits_positions`; for `left` padding the mask (widened over a host cache's
 * spare columns) and `position_ids`; for `right` padding (GroupQueryAttention) the rows moved to
 * column 0 (`toGqaStep`, whose RangeError it throws), `seqlens_k` and `total_sequence_length`; then
 * `past`'s keys and values for each of `layers` layers. Returns the GQA view too (null for `left`),
 * which says where each row's new keys go.
 */
export function stepFeeds(
  input: StepInput,
  past: KvCache,
  padding: KvPadding,
  layers: number,
): { feeds: StepFeeds; gqa: GqaStep | null } {
  const { batch, seq } = input;
  const gqa = padding === "right" ? toGqaStep(input, past.length) : null;
  const feeds: StepFeeds = {
    [IO.inputIds]: new ort.Tensor("int64", gqa?.inputIds ?? input.inputIds, [batch, seq]),
    [IO.logitsPositions]: new ort.Tensor("int64", gqa?.logitsPositions ?? input.logitsPositions, [
      batch,
      input.logitsCount,
    ]),
    ...(gqa === null
      ? {
          [IO.attentionMask]: maskTensor(input.attentionMask, past, seq),
          [IO.positionIds]: new ort.Tensor("int64", input.positionIds, [batch, seq]),
        }
      : {
          [IO.seqlensK]: new ort.Tensor("int32", gqa.seqlensK, [batch]),
          [IO.totalSequenceLength]: new ort.Tensor("int32", Int32Array.of(gqa.total), []),
        }),
  };
  for (let l = 0; l < layers; l++) {
    feeds[IO.pastKey(l)] = past.keys[l] as KvTensor;
    feeds[IO.pastValue(l)] = past.values[l] as KvTensor;
  }
  return { feeds, gqa };
}

/**
 * The caller's mask covers `past.length + seq` columns; a host cache has spare columns between
 * its keys and the new ones, which the graph must see masked out.
 */
function maskTensor(mask: BigInt64Array, past: KvCache, seq: number): ort.Tensor {
  const batch = past.batch;
  const given = past.length + seq;
  const wide = past.capacity + seq;
  if (wide === given) return new ort.Tensor("int64", mask, [batch, given]);
  const out = new BigInt64Array(batch * wide);
  for (let r = 0; r < batch; r++) {
    out.set(mask.subarray(r * given, r * given + past.length), r * wide);
    out.set(mask.subarray(r * given + past.length, (r + 1) * given), r * wide + past.capacity);
  }
  return new ort.Tensor("int64", out, [batch, wide]);
}
