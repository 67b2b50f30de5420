import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { RunEvent } from "@loracast/shared/run-events";
import { readEventDir, type TensorBoardEvent } from "@loracast/shared/tensorboard";
import { TensorBoardReporter } from "./index.ts";

const root = mkdtempSync(join(tmpdir(), "tb-reporter-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** A clock at `t` ms that the test moves. */
const clockAt = (t: { ms: number }) => ({ now: () => t.ms });

const step = (n: number, reward: number | null): RunEvent => ({
  type: "step",
  step: n,
  metrics: { reward_mean: reward, loss: 0.5, lr: 0.02, staleness: 1, clip_fraction: 0.25, custom_x: 3 },
  phasesMs: { rollout: 40, train: 16 },
});

function read(dir: string): TensorBoardEvent[] {
  const r = readEventDir(dir);
  if (!r.ok) throw new Error(r.error.message);
  assert.deepEqual(r.value.partial, []);
  return r.value.events;
}

describe("TensorBoardReporter", () => {
  it("writes each event's scalars under TRL's or loracast's tags, at the run's step, wall time from the clock", () => {
    const dir = join(root, "one");
    const t = { ms: 1_764_504_000_000 };
    const r = new TensorBoardReporter(dir, clockAt(t));
    t.ms += 1500;
    r.record({ type: "published", step: 0, version: 1, sha256: "ab", ms: 12 });
    t.ms += 500;
    r.record(step(1, 0.75));
    r.record({ type: "skipped", step: 2, reason: "non-finite loss" });
    r.record(step(3, null));
    r.record({ type: "checkpoint", step: 3, key: "k", ms: 7 });
    r.record({ type: "status", status: "completed", error: null });
    r.close();

    const [version, published, first, skipped, third, checkpoint, ...rest] = read(dir);
    assert.deepEqual(rest, [], "the status event has no scalars");
    assert.deepEqual(version, {
      kind: "file_version",
      wallTime: 1_764_504_000,
      step: 0,
      fileVersion: "brain.Event:2",
    });
    assert.deepEqual(published, {
      kind: "scalars",
      wallTime: 1_764_504_001.5,
      step: 0,
      scalars: [
        { tag: "loracast/published_version", value: 1 },
        { tag: "loracast/publish_ms", value: 12 },
      ],
    });
    assert.deepEqual(first, {
      kind: "scalars",
      wallTime: 1_764_504_002,
      step: 1,
      scalars: [
        { tag: "train/reward", value: 0.75 },
        { tag: "train/loss", value: 0.5 },
        { tag: "train/learning_rate", value: Math.fround(0.02) },
        { tag: "loracast/staleness", value: 1 },
        { tag: "train/clip_ratio/region_mean", value: 0.25 },
        { tag: "loracast/custom_x", value: 3 },
        { tag: "loracast/phase_ms/rollout", value: 40 },
        { tag: "loracast/phase_ms/train", value: 16 },
      ],
    });
    assert.deepEqual(skipped, {
      kind: "scalars",
      wallTime: 1_764_504_002,
      step: 2,
      scalars: [{ tag: "loracast/skipped_step", value: 1 }],
    });
    assert.equal(third?.step, 3);
    assert.ok(third?.kind === "scalars" && Number.isNaN(third.scalars[0]?.value), "null (not finite) is NaN");
    assert.deepEqual(checkpoint?.kind === "scalars" && checkpoint.scalars, [
      { tag: "loracast/checkpoint_ms", value: 7 },
    ]);
  });

  it("a resume opens a second file that starts a new session at the first redone step", () => {
    const dir = join(root, "resumed");
    const t = { ms: 1_764_504_000_000 };
    const first = new TensorBoardReporter(dir, clockAt(t));
    first.record(step(1, 0.1));
    first.record(step(2, 0.2));
    first.close();
    t.ms += 60_000;
    const second = new TensorBoardReporter(dir, clockAt(t));
    second.record({ type: "resumed", step: 1, lastStep: 2, version: 1 });
    second.record(step(2, 0.3));
    second.close();

    assert.equal(readdirSync(dir).length, 2);
    const events = read(dir);
    assert.deepEqual(
      events.map((e) => [e.kind, e.step]),
      [
        ["file_version", 0],
        ["scalars", 1],
        ["scalars", 2],
        ["file_version", 0],
        ["session_log", 2],
        ["scalars", 2],
      ],
    );
    assert.ok(events[4]?.kind === "session_log" && events[4].status === "START");
  });
});
