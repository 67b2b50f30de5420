/**
 * Packs prompt + completion pairs into a right-padded training batch. The scored positions are
 * those that predict completion tokens: position t scores token t + 1, for t from the last prompt
 * token to the one before the last completion token.
 */
import type { ScoredTokens } from "../losses/index.ts";
import type { TrainBatch } from "./training-session.ts";

/** One training example: prompt and completion token ids (both non-empty). */
export interface Sample {
  prompt: readonly number[];
  completion: readonly number[];
  /** Zero the whole completion out of the loss (a truncated completion when masking those). */
  masked?: boolean;
}

/**
 * Packs samples into one right-padded `TrainBatch` (`[batch, longest prompt + completion]`, pad
 * `padId`) and the `ScoredTokens` layout the losses read: one scored token per completion token, in
 * sample order. Throws `RangeError` on an empty batch or an empty prompt or completion.
 */
export function packBatch(
  samples: readonly Sample[],
  padId = 0,
): { batch: TrainBatch; tokens: ScoredTokens } {
  if (samples.length === 0) throw new RangeError("a batch needs at least one sample");
  for (const [i, s] of samples.entries()) {
    if (s.prompt.length === 0 || s.completion.length === 0) {
      throw new RangeError(`sample ${i}: prompt and completion must both be non-empty`);
    }
  }
  const seq = Math.max(...samples.map((s) => s.prompt.length + s.completion.length));
  const b = samples.length;
  const inputIds = new BigInt64Array(b * seq).fill(BigInt(padId));
  const attentionMask = new BigInt64Array(b * seq);
  const positionIds = new BigInt64Array(b * seq);
  const rows: bigint[] = [];
  const targets: bigint[] = [];
  const seqOf: number[] = [];
  const mask: number[] = [];
  samples.forEach((s, row) => {
    const ids = [...s.prompt, ...s.completion];
    ids.forEach((id, t) => {
      inputIds[row * seq + t] = BigInt(id);
      attentionMask[row * seq + t] = 1n;
      positionIds[row * seq + t] = BigInt(t);
    });
    for (let t = s.prompt.length - 1; t < ids.length - 1; t++) {
      rows.push(BigInt(row * seq + t));
      targets.push(BigInt(ids[t + 1] ?? 0));
      seqOf.push(row);
      mask.push(s.masked === true ? 0 : 1);
    }
  });
  return {
    batch: {
      batch: b,
      seq,
      inputIds,
      attentionMask,
      positionIds,
      rows: BigInt64Array.from(rows),
      targets: BigInt64Array.from(targets),
    },
    tokens: { sequences: b, seq: Int32Array.from(seqOf), mask: Float32Array.from(mask) },
  };
}
