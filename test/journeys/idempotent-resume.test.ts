/**
 * A resumed run publishes no version twice: the trainer is SIGKILLed after publishing past its
 * newest checkpoint and restarted; the redone steps' versions are the ones the first attempt
 * published (same weights), and a checkpoint off the publish cadence adds no version. The run ends
 * with one version for step 0 and one per `publishEvery` steps, each with distinct weights.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually } from "@loracast/dev-support/supervisor";
import { readSse } from "@loracast/shared/platform";
import { runInfoSchema, runStreamEventSchema, runVersionsSchema } from "@loracast/shared/trainer-api";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson } from "../helpers/training.ts";

describe("a resumed run publishes each version once", () => {
  let stack: Stack;
  let work: string;
  let dataset: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-resume-"));
    const fixture = await buildTrainingFixture(work);
    dataset = fixture.dataset;
    stack = await startStack({ trainerEnv: { TRAINER_MODEL_DIR: fixture.modelDir, TRAINER_THREADS: "1" } });
  });
  after(async () => {
    await stack?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  /** Starts the run, SIGKILLs the trainer once it has published at `killAfterStep`, restarts it, waits for the end. */
  async function killAndResume(config: Record<string, unknown>, killAfterStep: number): Promise<void> {
    const run = config.run as string;
    const res = await postJson(`${stack.trainer.url}/v1/runs`, config);
    assert.equal(res.status, 201, await res.clone().text());
    const controller = new AbortController();
    let checkpoint = 0;
    let published = 0;
    for await (const data of readSse(`${stack.trainer.url}/v1/runs/${run}/events`, controller.signal)) {
      const e = runStreamEventSchema.parse(data);
      if (e.type === "checkpoint") checkpoint = e.step;
      if (e.type === "published" && e.step >= killAfterStep) {
        published = e.step;
        break;
      }
    }
    controller.abort();
    await stack.trainer.kill();
    assert.ok(
      checkpoint > 0 && checkpoint < published,
      `killed at v(step ${published}) after checkpoint ${checkpoint}`,
    );
    await stack.startTrainer();
    await eventually(
      `${run} completes`,
      async () => {
        const r = await fetch(`${stack.trainer.url}/v1/runs/${run}`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        const info = runInfoSchema.parse(await r.json());
        if (info.status === "running") return undefined;
        assert.equal(info.status, "completed", info.error ?? "");
        return info;
      },
      240_000,
    );
  }

  async function assertVersions(run: string, expected: number): Promise<void> {
    const listed = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/${run}/versions`)).json(),
    );
    const shas = listed.versions.map((v) => v.sha256);
    assert.equal(new Set(shas).size, shas.length, `every version holds distinct weights: ${shas.join(" ")}`);
    assert.equal(listed.versions.length, expected, "one version for step 0 and one per publishEvery steps");
  }

  it("killed after publishing past an on-cadence checkpoint: the redone steps republish nothing", async () => {
    // Checkpoint at step 4 (a publish step); killed after v(step 6): steps 5 and 6 are redone.
    await killAndResume({ ...grpoRun("on-cadence", dataset, 8), publishEvery: 2, checkpointEvery: 4 }, 6);
    await assertVersions("on-cadence", 1 + 8 / 2);
  });

  it("resumed from a checkpoint off the publish cadence: no extra version", async () => {
    // Checkpoint at step 5 (between publishes at 4 and 6); killed after v(step 8).
    await killAndResume({ ...grpoRun("off-cadence", dataset, 10), publishEvery: 2, checkpointEvery: 5 }, 8);
    await assertVersions("off-cadence", 1 + 10 / 2);
  });
});
