/**
 * A run's history survives trainer restarts (issue 14, item 3), on real processes: the embedded S3
 * server and a trainer on the demo base. A finished run reports the same step, version, metrics and
 * status after a SIGTERM restart, replays its whole history with the same ids, and `Last-Event-ID`
 * resumes right after the event it names. A run whose trainer is SIGKILLed mid-run, after a
 * checkpoint and versions published after it, resumes with one append-only history: an id once
 * sent names the same event for good (the full replay starts with exactly what the client saw), a
 * client that reconnects with the id it saw last gets exactly the rest (a `resumed` event, then the
 * redone steps under new ids), and the published events name every version the store lists.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readSse } from "@loracast/shared/platform";
import {
  type RunInfo,
  type RunStreamEvent,
  runInfoSchema,
  runStreamEventSchema,
  runVersionsSchema,
  trainerErrorBodySchema,
} from "@loracast/shared/trainer-api";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson, readRunEvents } from "../helpers/training.ts";

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
    runInfoSchema.parse(
      await (
        await fetch(`${stack.trainer.url}/v1/runs/${run}`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json(),
    );

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
    assert.match(trainerErrorBodySchema.parse(await bad.json()).error.message, /^Last-Event-ID: /);
  });

  it("a run SIGKILLed after publishing past its checkpoint keeps every id and version; a reconnecting client gets the rest", async () => {
    // Versions every step, checkpoints every 4: killed after v(step 6), the run resumes from step 4.
    const config = { ...grpoRun("killed", dataset, 10), publishEvery: 1, checkpointEvery: 4 };
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    const seen: RunStreamEvent[] = [];
    const controller = new AbortController();
    for await (const data of readSse(`${stack.trainer.url}/v1/runs/killed/events`, controller.signal)) {
      const e = runStreamEventSchema.parse(data);
      seen.push(e);
      if (e.type === "published" && e.step >= 6) break;
    }
    controller.abort();
    await stack.trainer.kill();
    const last = seen.at(-1);
    assert.ok(last !== undefined && last.type === "published", "the trainer was killed mid-run");
    const checkpointSeen = seen.findLast((e) => e.type === "checkpoint");
    assert.ok(
      checkpointSeen?.type === "checkpoint" && checkpointSeen.step < last.step,
      "versions after a checkpoint",
    );

    await stack.startTrainer();
    const early = await info("killed");
    assert.ok(
      early.version !== null && early.version >= last.version,
      `the run still reports the newest version it published (v${early.version}, saw v${last.version})`,
    );
    const url = `${stack.trainer.url}/v1/runs/killed/events`;
    const rest = (await readRunEvents(url, String(last.seq))).map((f) => f.data);
    const whole = (await readRunEvents(url)).map((f) => f.data);

    // (b) Every id the client saw still names the event it saw.
    assert.deepEqual(
      whole.slice(0, seen.length),
      seen,
      "the full replay starts with exactly what the client saw",
    );
    // (a) Reconnecting with the last id seen gives exactly the events after it, under new ids.
    assert.deepEqual(rest, whole.slice(seen.length), "exactly the events after the last one seen");
    assert.deepEqual(
      whole.map((e) => e.seq),
      Array.from({ length: whole.length }, (_, i) => i + 1),
      "ids are contiguous from 1, none reused",
    );
    const resumed = rest.find((e) => e.type === "resumed");
    assert.ok(resumed?.type === "resumed", "the reconnecting client hears of the resume");
    assert.ok(
      resumed.step < last.step && resumed.step % 4 === 0 && resumed.lastStep >= last.step,
      `resumed from checkpoint ${resumed.step} after reaching step ${resumed.lastStep}`,
    );
    const afterResume = rest.slice(rest.indexOf(resumed) + 1);
    assert.deepEqual(
      afterResume.filter((e) => e.type === "step").map((e) => e.step),
      Array.from({ length: 10 - resumed.step }, (_, i) => resumed.step + i + 1),
      "the lost steps are redone once each, in order, after the resumed event",
    );
    assert.equal(whole.at(-1)?.type, "status");
    assert.equal(whole.filter((e) => e.type === "status").length, 1);

    // (c) The published events name exactly the versions the store lists, the lost steps' included.
    const published = whole.flatMap((e) => (e.type === "published" ? [e.version] : []));
    assert.ok(
      published.every((v, i) => i === 0 || v > (published[i - 1] ?? 0)),
      `versions rise without repeats: ${published}`,
    );
    const listed = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/killed/versions`)).json(),
    );
    assert.deepEqual(
      published,
      listed.versions.map((v) => v.version).sort((x, y) => x - y),
      "every version published",
    );
    const shown = await info("killed");
    assert.deepEqual(
      { status: shown.status, step: shown.step, version: shown.version },
      { status: "completed", step: 10, version: published.at(-1) },
    );
  });
});
