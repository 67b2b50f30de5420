import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRng, deriveSeed } from "./index.ts";

const first = (seed: number) => createRng(seed).next();

describe("deriveSeed", () => {
  it("gives every stream of a large seed its own sequence (a trainer's rollout seeds are ~1e11)", () => {
    for (const seed of [131_074_458_759, 6.5e16, 2 ** 53 + 2, -7, 0]) {
      const streams = Array.from({ length: 8 }, (_, i) => deriveSeed(seed, i));
      assert.equal(new Set(streams).size, 8, `seed ${seed}: ${streams}`);
      assert.equal(new Set(streams.map(first)).size, 8, `seed ${seed}: the rngs' first draws`);
    }
  });

  it("is a function of (seed, stream), a 32-bit unsigned integer: the same inputs replay the same seed", () => {
    assert.equal(deriveSeed(131_074_458_759, 3), deriveSeed(131_074_458_759, 3));
    for (const s of [0, 1, 2 ** 31, 2 ** 32 - 1])
      assert.ok(Number.isInteger(s) && deriveSeed(s, 0) >>> 0 === deriveSeed(s, 0));
  });

  it("tells apart seeds that differ only above bit 32, or in sign", () => {
    assert.notEqual(deriveSeed(5, 0), deriveSeed(5 + 2 ** 32, 0));
    assert.notEqual(deriveSeed(5, 0), deriveSeed(-5, 0));
    assert.notEqual(deriveSeed(1, 0), deriveSeed(0, 1));
  });
});
