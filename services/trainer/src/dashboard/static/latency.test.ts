import assert from "node:assert/strict";
import { describe, it } from "node:test";

type Row = { activatedAt: number | null; trigger: string };
type Activation = { kind: "handoff"; ms: number } | { kind: "start-up" } | { kind: "rollback" } | null;
// The page's module is plain JavaScript (served as is): imported by URL, typed here.
const { activation } = (await import(new URL("./latency.js", import.meta.url).href)) as {
  activation: (row: Row, published: number | undefined, startedAt: number | null) => Activation;
};

const PUBLISHED = 1_000_000;

describe("fleet panel: publish → active latency", () => {
  it("measures a version published while the generator ran", () => {
    const row = { activatedAt: PUBLISHED + 250, trigger: "webhook" };
    assert.deepEqual(activation(row, PUBLISHED, PUBLISHED - 60_000), { kind: "handoff", ms: 250 });
    // A generator that reports no start time: taken as a handoff, as before.
    assert.deepEqual(activation(row, PUBLISHED, null), { kind: "handoff", ms: 250 });
  });

  it("does not measure a version a restarted generator activated at start-up (its downtime)", () => {
    const row = { activatedAt: PUBLISHED + 90_000, trigger: "reconcile" };
    assert.deepEqual(activation(row, PUBLISHED, PUBLISHED + 85_000), { kind: "start-up" });
  });

  it("does not measure a rollback's re-activation", () => {
    const row = { activatedAt: PUBLISHED + 600_000, trigger: "rollback" };
    assert.deepEqual(activation(row, PUBLISHED, PUBLISHED - 1), { kind: "rollback" });
  });

  it("has nothing for a version not activated or whose publish time is unknown", () => {
    assert.equal(activation({ activatedAt: null, trigger: "webhook" }, PUBLISHED, null), null);
    assert.equal(activation({ activatedAt: PUBLISHED, trigger: "webhook" }, undefined, null), null);
  });
});
