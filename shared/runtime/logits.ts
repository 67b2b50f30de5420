/** Small numeric helpers over rows of a `[rows, vocab]` logits buffer. */

/** log softmax of row `row` at `token`, accumulated in float64. */
export function logProbAt(logits: Float32Array, row: number, vocab: number, token: number): number {
  const base = row * vocab;
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < vocab; j++) max = Math.max(max, logits[base + j] ?? 0);
  let sum = 0;
  for (let j = 0; j < vocab; j++) sum += Math.exp((logits[base + j] ?? 0) - max);
  return (logits[base + token] ?? 0) - max - Math.log(sum);
}

/** Index of the largest value in row `row` (the first one on ties, as torch.argmax). */
export function argmaxRow(logits: Float32Array, row: number, vocab: number): number {
  const base = row * vocab;
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < vocab; j++) {
    const v = logits[base + j] ?? Number.NEGATIVE_INFINITY;
    if (v > bestValue) {
      bestValue = v;
      best = j;
    }
  }
  return best;
}
