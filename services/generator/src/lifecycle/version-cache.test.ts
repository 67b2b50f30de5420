import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VersionRecord } from "./types.ts";
import { VersionCache } from "./version-cache.ts";

const record = (
  version: number,
  state: VersionRecord["state"],
  bytes: number,
  lastUsedAt: number,
  pins = 0,
): VersionRecord => ({
  run: "r",
  version,
  state,
  pulling: null,
  manifestKey: "",
  sha256: null,
  manifestSha256: null,
  bytes,
  reason: null,
  manifestRefused: false,
  refusal: null,
  retry: null,
  trigger: "webhook",
  announcedAt: 0,
  publishedAt: null,
  activatedAt: null,
  lastUsedAt,
  pins,
  phases: null,
  adapter: { weights: new Uint8Array(bytes), feeds: null },
});

describe("version cache", () => {
  it("evicts least recently used staged or retired versions, never the active or a pinned one", () => {
    const cache = new VersionCache({ maxVersions: 2, maxBytes: 1e9 });
    cache.set(record(1, "retired", 10, 1, 1));
    cache.set(record(2, "retired", 10, 2));
    cache.set(record(3, "staged", 10, 3));
    cache.set(record(4, "active", 10, 0));
    const evicted = cache.evict().map((e) => e.record.version);
    assert.deepEqual(evicted, [2, 3]);
    assert.equal(cache.get("r", 1)?.state, "retired", "pinned survives over the bound");
    assert.equal(cache.get("r", 4)?.state, "active");
    assert.equal(cache.get("r", 2)?.adapter, null);
    assert.equal(cache.get("r", 2)?.state, "retired", "eviction drops the weights, not the state");
  });

  it("makes room for a download in progress and honours the byte bound", () => {
    const cache = new VersionCache({ maxVersions: 10, maxBytes: 25 });
    cache.set(record(1, "retired", 10, 1));
    cache.set(record(2, "active", 10, 2));
    assert.deepEqual(
      cache.evict().map((e) => e.record.version),
      [],
    );
    assert.deepEqual(
      cache.evict(10).map((e) => e.record.version),
      [1],
    );
    assert.equal(cache.heldBytes(), 10);
  });
});
