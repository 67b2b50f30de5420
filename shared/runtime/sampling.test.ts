/**
 * `sampleToken` against a plain reference of the same sampler (vocabulary-order candidates, a
 * comparator sort for top-k/top-p, every weight recomputed where it is used): the scratch buffers,
 * the kept exponentials and the packed-key sort must change no token, ties, -0 and banned
 * (-Infinity) tokens included.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRng, type Rng } from "../random/index.ts";
import { argmax } from "./logits.ts";
import { type SamplingParams, sampleToken } from "./sampling.ts";

function reference(logits: Float32Array, p: SamplingParams, rng: Rng): number {
  const best = argmax(logits);
  const max = logits[best] as number;
  const t = p.temperature > 0 ? p.temperature : 1;
  const weight = (j: number) => Math.exp(((logits[j] as number) - max) / t);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += weight(j);
  const floor = Math.log(Math.max(1e-12, p.minP)) * p.temperature + max;
  const candidates = [...logits.keys()].filter((j) => (logits[j] as number) >= floor);
  let keep = candidates.length;
  if (p.topK > 0 || p.topP < 1) {
    candidates.sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b);
    if (p.topK > 0) keep = Math.min(keep, p.topK);
    let cum = 0;
    for (let i = 0; i < keep && p.topP < 1; i++) {
      cum += weight(candidates[i] as number) / sum;
      if (cum >= p.topP) keep = i + 1;
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += weight(candidates[i] as number);
  let u = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    u -= weight(candidates[i] as number);
    if (u < 0) return candidates[i] as number;
  }
  return candidates[keep - 1] ?? 0;
}

describe("sampleToken", () => {
  it("draws the reference sampler's token for every truncation, with ties, -0 and banned tokens", () => {
    const r = createRng(7);
    let checked = 0;
    for (let c = 0; c < 240; c++) {
      const vocab = [5, 97, 4099][c % 3] as number;
      // Coarse values make ties common; some cases get -0, some banned tokens.
      const logits = Float32Array.from({ length: vocab }, () => Math.round((r.next() * 2 - 1) * 24) / 4);
      if (c % 4 === 0) for (let k = 0; k < vocab / 8; k++) logits[Math.floor(r.next() * vocab)] = -Infinity;
      if (c % 5 === 0) logits[Math.floor(r.next() * vocab)] = -0;
      const params: SamplingParams = {
        temperature: [1, 0.7, 1.3][c % 3] as number,
        topK: [0, 0, 5, 50, 1][c % 5] as number,
        topP: [1, 0.9, 0.5, 1, 0.99, 1, 0.3][c % 7] as number,
        minP: [0, 0, 0.05, 0.2][c % 4] as number,
      };
      for (let s = 0; s < 4; s++) {
        const got = sampleToken(logits, params, createRng(c * 10 + s), null).token;
        assert.equal(got, reference(logits, params, createRng(c * 10 + s)), `case ${c} draw ${s}`);
        checked++;
      }
    }
    assert.equal(checked, 960);
  });

  it("treats -0 and 0 as a tie, broken by token id, as the comparator does", () => {
    // Zeros of both signs are the largest logits; top-k 3 keeps the three lowest ids among them.
    const logits = Float32Array.from({ length: 64 }, (_, j) => (j % 5 === 0 ? (j % 2 ? -0 : 0) : -4));
    const params: SamplingParams = { temperature: 1, topK: 3, topP: 1, minP: 0 };
    const drawn = new Set<number>();
    for (let s = 0; s < 200; s++) {
      const got = sampleToken(logits, params, createRng(s), null).token;
      assert.equal(got, reference(logits, params, createRng(s)));
      drawn.add(got);
    }
    assert.deepEqual(
      [...drawn].sort((a, b) => a - b),
      [0, 5, 10],
    );
  });
});
