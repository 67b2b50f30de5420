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
const log = createLogger({}, { write: (l) => warnings.push(l), quiet: true });

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

  it("rewinds to a checkpoint's step: later steps, their versions and a status go; ids continue", async () => {
    const path = join(dir, "rewind.events.jsonl");
    const { history } = await RunHistory.open(path, log);
    history.append(published(0, 1));
    run(history, 1, 6, 2); // v2 at 2, v3 at 4, v4 at 6; checkpoints at 2, 4, 6
    history.append({ type: "status", status: "failed", error: "x" });
    const summary = await history.rewind(4);
    // Kept: published v1, step 1, step 2, v2, ckpt 2, step 3, step 4, v3, ckpt 4.
    assert.deepEqual(
      { lastSeq: summary.lastSeq, step: summary.step, version: summary.version, status: summary.status },
      { lastSeq: 9, step: 4, version: 3, status: null },
    );
    assert.equal(history.append(step(5)).seq, 10);
    history.close();
    const reopened = await RunHistory.open(path, log);
    assert.equal(reopened.summary.lastSeq, 10);
    assert.deepEqual(
      (await collect(reopened.history, 0)).filter((e) => e.type === "step").map((e) => e.step),
      [1, 2, 3, 4, 5],
    );
    // Nothing past the step: nothing to cut.
    assert.equal((await reopened.history.rewind(5)).lastSeq, 10);
  });
});
