import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { VerdictCache } from "./verdict-cache.ts";

describe("VerdictCache", () => {
  it("answers while the entity tag is unchanged and the verdict young, and keeps the most recently used", () => {
    const clock = { t: 0 };
    const cache = new VerdictCache<string>(2, 1_000, () => clock.t);
    cache.set("a", "e1", "ok");
    assert.equal(cache.get("a", "e1"), "ok");
    assert.equal(cache.get("a", "e2"), undefined, "another tag: the bytes changed");
    cache.set("a", "e2", "refused");
    clock.t = 999;
    assert.equal(cache.get("a", "e2"), "refused");
    clock.t = 1_000;
    assert.equal(cache.get("a", "e2"), undefined, "expired");
    cache.set("a", "e3", "a");
    cache.set("b", "e1", "b");
    assert.equal(cache.get("a", "e3"), "a");
    cache.set("c", "e1", "c");
    assert.equal(cache.get("b", "e1"), undefined, "the least recently used went first");
    assert.deepEqual([cache.get("a", "e3"), cache.get("c", "e1")], ["a", "c"]);
  });
});
