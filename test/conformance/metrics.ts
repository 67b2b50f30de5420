/** Error measures between two logits buffers of `rows × vocab`. */

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] ?? 0) - (b[i] ?? 0));
    if (!(d <= max)) max = d; // NaN propagates as the max
  }
  return max;
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

/** Mean over rows of KL(p_ref ‖ p_test), and the share of rows whose argmax agrees. */
export function distributionAgreement(
  ref: Float32Array,
  test: Float32Array,
  vocab: number,
): { meanKl: number; top1: number } {
  const rows = ref.length / vocab;
  let kl = 0;
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    const a = ref.subarray(r * vocab, (r + 1) * vocab);
    const b = test.subarray(r * vocab, (r + 1) * vocab);
    const la = logSoftmax(a);
    const lb = logSoftmax(b);
    let rowKl = 0;
    let ia = 0;
    let ib = 0;
    for (let j = 0; j < vocab; j++) {
      rowKl += Math.exp(la[j] ?? 0) * ((la[j] ?? 0) - (lb[j] ?? 0));
      if ((a[j] ?? 0) > (a[ia] ?? 0)) ia = j;
      if ((b[j] ?? 0) > (b[ib] ?? 0)) ib = j;
    }
    kl += rowKl;
    if (ia === ib) agree++;
  }
  return { meanKl: kl / rows, top1: agree / rows };
}

/** ‖a − b‖ / ‖b‖, in float64; NaN anywhere gives NaN. */
export function relativeL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    diff += d * d;
    norm += (b[i] ?? 0) ** 2;
  }
  return Math.sqrt(diff) / Math.sqrt(norm);
}
