/** A seedable source of randomness. Logic takes one of these instead of calling Math.random(). */
export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/** xoshiro128** seeded through SplitMix32: fast, small state, and the same sequence on every platform. */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const st = [splitmix(), splitmix(), splitmix(), splitmix()] as [number, number, number, number];
  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(st[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (st[1] << 9) >>> 0;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 11);
    return result;
  };
  return {
    next: () => nextU32() / 0x1_0000_0000,
    int: (n) => Math.floor((nextU32() / 0x1_0000_0000) * n),
  };
}

/**
 * The 32-bit `createRng` seed of stream `stream` (a choice index, >= 0) of something seeded with
 * `seed`: any integer a JSON number holds, negative or past 2^53 included. Both 32-bit halves of
 * `seed` (as a 64-bit two's-complement integer) and the stream are folded in through MurmurHash3's
 * 32-bit finalizer (`fmix32`, Appleby's MurmurHash3.cpp), so streams of one seed differ and seeds
 * that differ only above bit 32 do too. A product such as `seed * k + stream` loses `stream` to
 * rounding once it passes 2^53, which gave every choice of a request the same tokens.
 */
export function deriveSeed(seed: number, stream: number): number {
  const bits = BigInt.asUintN(64, BigInt(Math.trunc(seed)));
  const lo = Number(bits & 0xffff_ffffn);
  const hi = Number(bits >> 32n);
  let h = fmix32(lo ^ 0x9e37_79b9);
  h = fmix32(h ^ hi);
  return fmix32(h ^ Math.imul(stream >>> 0, 0x85eb_ca6b));
}

function fmix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
