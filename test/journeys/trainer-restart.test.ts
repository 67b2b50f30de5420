/**
 * A run's history survives trainer restarts (issue 14, item 3), on real processes: the embedded S3
 * server and a trainer on the demo base. A finished run reports the same step, version, metrics and
 * status after a SIGTERM restart, replays its whole history with the same ids, and `Last-Event-ID`
 * resumes right after the event it names. A run whose trainer is SIGKILLed mid-run resumes with
 * one history: ids contiguous, every step and version once, and a client that reconnects with the
 * id it saw last gets exactly the rest.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readSse } from "@loracast/shared/platform";
import { type RunStreamEvent, runStreamEventSchema } from "@loracast/shared/run-events";
import { type Stack, startStack } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson, readRunEvents } from "../helpers/training.ts";

interface RunInfo {
  status: string;
  step: number;
  version: number | null;
  metrics: Record<string, number | null> | null;
}

/** The history tells one story: ids 1…n, steps 1…`steps` once each in order, versions rising. */
function assertOneHistory(events: RunStreamEvent[], steps: number): void {
  assert.deepEqual(
    events.map((e) => e.seq),
    Array.from({ length: events.length }, (_, i) => i + 1),
    "event ids are contiguous from 1",
  );
  assert.deepEqual(
    events.filter((e) => e.type === "step").map((e) => e.step),
    Array.from({ length: steps }, (_, i) => i + 1),
    "every step once, in order",
  );
  const versions = events.flatMap((e) => (e.type === "published" ? [e.version] : []));
  assert.ok(
    versions.every((v, i) => i === 0 || v > (versions[i - 1] ?? 0)),
    `versions rise without repeats: ${versions}`,
  );
  assert.equal(events.at(-1)?.type, "status");
  assert.equal(events.filter((e) => e.type === "status").length, 1);
}

describe("a trainer restart keeps every run's history", () => {
  let stack: Stack;
  let work: string;
  let dataset: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-restart-"));
    const fixture = await buildTrainingFixture(work);
    dataset = fixture.dataset;
    stack = await startStack({ trainerEnv: { TRAINER_MODEL_DIR: fixture.modelDir, TRAINER_THREADS: "1" } });
  });
  after(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const info = async (run: string): Promise<RunInfo> =>
    (await (await fetch(`${stack.trainer.url}/v1/runs/${run}`)).json()) as RunInfo;

  it("a finished run reports its step, version, metrics and status, and replays its history, after SIGTERM", async () => {
    const res = await postJson(`${stack.trainer.url}/v1/runs`, grpoRun("finished", dataset, 6));
    assert.equal(res.status, 201, await res.clone().text());
    const before = await readRunEvents(`${stack.trainer.url}/v1/runs/finished/events`);
    for (const f of before) {
      assert.equal(f.id, String(f.data.seq), "the SSE id is the event's seq");
      assert.equal(f.event, f.data.type);
    }
    const events = before.map((f) => f.data);
    assertOneHistory(events, 6);
    const lastStep = events.filter((e) => e.type === "step").at(-1);
    const shown = await info("finished");
    assert.deepEqual(
      { status: shown.status, step: shown.step, version: shown.version },
      { status: "completed", step: 6, version: 4 },
      "v1 is the initial adapter, then one version every 2 steps",
    );

    await stack.trainer.stop();
    await stack.startTrainer();

    const after = await info("finished");
    assert.deepEqual(
      { status: after.status, step: after.step, version: after.version, metrics: after.metrics },
      {
        status: "completed",
        step: 6,
        version: 4,
        metrics: lastStep?.type === "step" ? lastStep.metrics : null,
      },
    );
    const replayed = await readRunEvents(`${stack.trainer.url}/v1/runs/finished/events`);
    assert.deepEqual(replayed, before, "the whole history, with the same ids");

    const middle = before[Math.floor(before.length / 2)];
    assert.ok(middle !== undefined);
    const rest = await readRunEvents(`${stack.trainer.url}/v1/runs/finished/events`, middle.id);
    assert.deepEqual(rest, before.slice(Math.floor(before.length / 2) + 1), "exactly the events after it");
    assert.deepEqual(
      await readRunEvents(`${stack.trainer.url}/v1/runs/finished/events`, before.at(-1)?.id),
      [],
    );

    const bad = await fetch(`${stack.trainer.url}/v1/runs/finished/events`, {
      headers: { "last-event-id": "step-3" },
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /^Last-Event-ID: /);
  });

  it("a run SIGKILLed mid-run resumes with one history, and a reconnecting client gets exactly the rest", async () => {
    const res = await postJson(`${stack.trainer.url}/v1/runs`, grpoRun("killed", dataset, 10));
    assert.equal(res.status, 201, await res.clone().text());
    const seen: RunStreamEvent[] = [];
    const controller = new AbortController();
    for await (const data of readSse(`${stack.trainer.url}/v1/runs/killed/events`, controller.signal)) {
      const e = runStreamEventSchema.parse(data);
      seen.push(e);
      if (e.type === "checkpoint" && e.step >= 4) break;
    }
    controller.abort();
    await stack.trainer.kill();
    const last = seen.at(-1);
    assert.ok(last?.type === "checkpoint", "the trainer was killed mid-run");

    await stack.startTrainer();
    const rest = (await readRunEvents(`${stack.trainer.url}/v1/runs/killed/events`, String(last.seq))).map(
      (f) => f.data,
    );
    assert.equal(rest[0]?.seq, last.seq + 1, "resumes right after the last event seen");
    assertOneHistory([...seen, ...rest], 10);
    const whole = (await readRunEvents(`${stack.trainer.url}/v1/runs/killed/events`)).map((f) => f.data);
    assert.deepEqual(whole, [...seen, ...rest], "a full replay is what the client saw across the restart");
    const shown = await info("killed");
    const versions = whole.flatMap((e) => (e.type === "published" ? [e.version] : []));
    assert.deepEqual(
      { status: shown.status, step: shown.step, version: shown.version },
      { status: "completed", step: 10, version: versions.at(-1) },
    );
  });
});
