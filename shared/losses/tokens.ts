/**
 * The token layout every loss shares: the scored (completion) tokens of a micro-batch, flat, each
 * tagged with its sequence. Losses return dLoss/dLogprob per token, the training graph's seed.
 */
export interface ScoredTokens {
  /** Number of sequences in the micro-batch. */
  sequences: number;
  /** [k]: the sequence of each scored token, 0 ≤ seq < sequences. */
  seq: Int32Array;
  /** [k]: 1 where the token counts, 0 where it is masked (after EOS, truncated completions). */
  mask: Float32Array;
}

/** What every loss returns for one micro-batch of k scored tokens. */
export interface LossResult {
  /** The loss value, as the framework would report it for this micro-batch. */
  loss: number;
  /** [k]: dLoss/dLogprob per scored token. */
  grad: Float32Array;
}

/** Σ_t mask per sequence. */
export function tokensPerSequence(tokens: ScoredTokens): Float64Array {
  const counts = new Float64Array(tokens.sequences);
  tokens.seq.forEach((s, k) => {
    counts[s] = (counts[s] ?? 0) + (tokens.mask[k] ?? 0);
  });
  return counts;
}

/**
 * Checks the layout before a loss reads it: `mask` and every non-null per-token array have k = `seq.length`
 * entries, and every `seq` entry lies in [0, sequences). Throws a `RangeError` naming the array otherwise
 * (a caller's bug, not an expected failure).
 */
export function checkLengths(tokens: ScoredTokens, arrays: Record<string, ArrayLike<number> | null>): void {
  const k = tokens.seq.length;
  if (tokens.mask.length !== k)
    throw new RangeError(`mask has ${tokens.mask.length} entries for ${k} tokens`);
  for (const [name, a] of Object.entries(arrays)) {
    if (a !== null && a.length !== k) throw new RangeError(`${name} has ${a.length} entries for ${k} tokens`);
  }
  for (const s of tokens.seq) {
    if (!(s >= 0 && s < tokens.sequences))
      throw new RangeError(`sequence index ${s} out of [0, ${tokens.sequences})`);
  }
}
