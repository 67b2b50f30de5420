import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RefusalLog } from "./refusal-log.ts";

describe("refusal log", () => {
  it("counts by kind and code, lists each key once with first and last seen, newest first", () => {
    let now = 1000;
    const log = new RefusalLog(10, 100, () => now);
    const key = "runs/r/versions/000000000002.json";
    log.add({ record: "manifest", key, code: "unsigned", reason: "no signature" });
    now = 2000;
    log.add({ record: "rollback", key: "runs/r/rollbacks/x.json", code: "malformed", reason: "not JSON" });
    now = 3000;
    log.add({ record: "manifest", key, code: "unsigned", reason: "no signature" });
    assert.deepEqual(log.counters(), [
      { record: "manifest", code: "unsigned", count: 2 },
      { record: "rollback", code: "malformed", count: 1 },
    ]);
    assert.deepEqual(
      log.list().map((r) => [r.run, r.key, r.firstSeenAt, r.lastSeenAt, r.count]),
      [
        ["r", key, 1000, 3000, 2],
        ["r", "runs/r/rollbacks/x.json", 2000, 2000, 1],
      ],
    );
    log.resolve(key);
    assert.deepEqual(
      log.list().map((r) => r.key),
      ["runs/r/rollbacks/x.json"],
    );
    assert.equal(log.counters()[0]?.count, 2, "a resolved key stays counted");
  });

  it("keeps the newest few keys per run and in all", () => {
    const log = new RefusalLog(2, 3);
    const add = (run: string, i: number) =>
      log.add({ record: "manifest", key: `runs/${run}/versions/${i}.json`, code: "misplaced", reason: "" });
    for (let i = 1; i <= 4; i++) add("a", i);
    assert.deepEqual(
      log.list().map((r) => r.key),
      ["runs/a/versions/4.json", "runs/a/versions/3.json"],
    );
    add("b", 1);
    add("c", 1);
    assert.deepEqual(
      log.list().map((r) => r.key),
      ["runs/c/versions/1.json", "runs/b/versions/1.json", "runs/a/versions/4.json"],
    );
  });
});
