/**
 * The `p`-th percentile (0–100) of `xs` by the nearest-rank method on the sorted values (no
 * interpolation): p50 of [1, 2, 3, 4] is 3. `xs` must not be empty (NaN is returned otherwise).
 */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}
