import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createLogger } from "@loracast/shared/platform";
import type { RunEvent, RunStreamEvent } from "@loracast/shared/run-events";
import { RunHistory } from "./run-history.ts";

const dir = mkdtempSync(join(tmpdir(), "loracast-history-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const warnings: string[] = [];
const log = createLogger({}, { write: (l) => warnings.push(l), level: "warn" });

const step = (s: number): RunEvent => ({ type: "step", step: s, metrics: { loss: s }, phasesMs: {} });
const published = (s: number, version: number): RunEvent => ({
  type: "published",
  step: s,
  version,
  sha256: "0".repeat(64),
  ms: 1,
});
const checkpoint = (s: number): RunEvent => ({ type: "checkpoint", step: s, key: `c/${s}`, ms: 1 });

async function collect(h: RunHistory, after: number, upTo = h.lastSeq): Promise<RunStreamEvent[]> {
  const out: RunStreamEvent[] = [];
  for await (const e of h.replay(after, upTo)) out.push(e);
  return out;
}

/** published v1 at 0, then per step: step s, and at even steps published + checkpoint. */
function run(h: RunHistory, from: number, to: number, firstVersion: number): void {
  let v = firstVersion;
  for (let s = from; s <= to; s++) {
    h.append(step(s));
    if (s % 2 === 0) {
      h.append(published(s, v++));
      h.append(checkpoint(s));
    }
  }
}

describe("run history", () => {
  it("numbers events from 1, replays from disk after an id, and reopens with the same ids", async () => {
    const path = join(dir, "a.events.jsonl");
    const { history, summary } = await RunHistory.open(path, log);
    assert.equal(summary.lastSeq, 0);
    assert.equal(history.append(published(0, 1)).seq, 1);
    run(history, 1, 4, 2);
    history.append({ type: "status", status: "completed", error: null });
    history.close();
    assert.equal(history.lastSeq, 10);
    assert.deepEqual(
      (await collect(history, 6)).map((e) => e.seq),
      [7, 8, 9, 10],
    );
    assert.deepEqual(
      (await collect(history, 0, 3)).map((e) => e.type),
      ["published", "step", "step"],
    );
    const again = await RunHistory.open(path, log);
    assert.deepEqual(again.summary, {
      lastSeq: 10,
      step: 4,
      metrics: { loss: 4 },
      version: 3,
      status: { type: "status", status: "completed", error: null, seq: 10 },
      crashesSinceCheckpoint: 0,
      stoppedCleanly: false,
    });
    assert.deepEqual(await collect(again.history, 0), await collect(history, 0));
  });

  it("cuts a line a crash left half-written, and appends after it", async () => {
    const path = join(dir, "torn.events.jsonl");
    const { history } = await RunHistory.open(path, log);
    run(history, 1, 2, 1);
    history.close();
    appendFileSync(path, '{"type":"step","step":3,"metr');
    const reopened = await RunHistory.open(path, log);
    assert.equal(reopened.summary.lastSeq, 4);
    assert.match(warnings.join("\n"), /run history cut at a damaged line/);
    assert.equal(reopened.history.append(step(3)).seq, 5);
    reopened.history.close();
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    assert.equal(lines.length, 5);
    assert.equal(JSON.parse(lines[4] ?? "").step, 3);
  });

  it("a resume appends: earlier ids keep their events, redone steps get new ids, progress follows", async () => {
    const path = join(dir, "resume.events.jsonl");
    const { history } = await RunHistory.open(path, log);
    history.append(published(0, 1));
    run(history, 1, 5, 2); // v2 at 2, v3 at 4; checkpoints at 2, 4; step 5 is lost
    history.close();
    const before = await collect(history, 0);
    const reopened = await RunHistory.open(path, log);
    assert.deepEqual(
      { lastSeq: reopened.summary.lastSeq, step: reopened.summary.step, version: reopened.summary.version },
      { lastSeq: 10, step: 5, version: 3 },
    );
    const resumed = reopened.history.append({ type: "resumed", step: 4, lastStep: 5, version: 3 });
    assert.equal(resumed.seq, 11);
    run(reopened.history, 5, 6, 4);
    reopened.history.close();
    const after = await RunHistory.open(path, log);
    const whole = await collect(after.history, 0);
    assert.deepEqual(whole.slice(0, before.length), before, "every id names the event it named");
    assert.deepEqual(
      whole.map((e) => e.seq),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      whole.filter((e) => e.type === "step").map((e) => e.step),
      [1, 2, 3, 4, 5, 5, 6],
      "the redone step follows the resume under a new id",
    );
    assert.deepEqual(
      { step: after.summary.step, version: after.summary.version, metrics: after.summary.metrics },
      { step: 6, version: 4, metrics: { loss: 6 } },
    );
    after.history.close();
  });

  it("right after a resume, progress is the checkpoint's step with no metrics and the newest version", async () => {
    const path = join(dir, "resumed-only.events.jsonl");
    const { history } = await RunHistory.open(path, log);
    history.append(published(0, 1));
    run(history, 1, 3, 2);
    history.append({ type: "resumed", step: 2, lastStep: 3, version: 2 });
    history.close();
    const { summary } = await RunHistory.open(path, log);
    assert.deepEqual(
      { lastSeq: summary.lastSeq, step: summary.step, version: summary.version, metrics: summary.metrics },
      { lastSeq: 7, step: 2, version: 2, metrics: null },
    );
  });
  it("counts resumes after a crash since the newest checkpoint, not those after a clean stop", async () => {
    const path = join(dir, "stops.events.jsonl");
    const { history } = await RunHistory.open(path, log);
    const resumed = { type: "resumed", step: 0, lastStep: 1, version: 0 } as const;
    history.append({ type: "stopped", step: 1 });
    history.append(resumed);
    history.append({ type: "stopped", step: 1 });
    let { summary } = await RunHistory.open(path, log);
    assert.deepEqual([summary.crashesSinceCheckpoint, summary.stoppedCleanly], [0, true]);
    history.append(resumed); // after the clean stop: not counted
    history.append(resumed); // after a kill: counted
    history.append(resumed);
    ({ summary } = await RunHistory.open(path, log));
    assert.deepEqual([summary.crashesSinceCheckpoint, summary.stoppedCleanly], [2, false]);
    history.append({ type: "checkpoint", step: 2, key: "k", ms: 1 });
    history.close();
    ({ summary } = await RunHistory.open(path, log));
    assert.equal(summary.crashesSinceCheckpoint, 0);
  });
});
