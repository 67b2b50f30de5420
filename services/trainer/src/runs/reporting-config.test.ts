/**
 * `reportTo` and `loggingDir` as `POST /v1/runs` checks them: the folder is always a relative one
 * under the operator's TRAINER_TENSORBOARD_DIR, and is refused where no files are written.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { planGrpoRun } from "./testing/fakes.ts";

describe("reportTo and loggingDir", () => {
  let dir: string;
  let path: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "reporting-config-"));
    path = join(dir, "data.jsonl");
    await writeFile(path, `${JSON.stringify({ prompt: "q1:" })}\n`);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const plan = (extra: Record<string, unknown>) => planGrpoRun(path, dir, extra);
  const refusal = async (extra: Record<string, unknown>) => {
    const p = await plan(extra);
    assert.ok(!p.ok, JSON.stringify(extra));
    assert.equal(p.error.code, "invalid_config");
    return p.error.message;
  };

  it("defaults to no reporting, and takes tensorboard with a nested relative folder", async () => {
    const none = await plan({});
    assert.ok(none.ok);
    assert.deepEqual(none.value.config.reportTo, []);
    assert.equal(none.value.config.loggingDir, null);
    const tb = await plan({ reportTo: ["tensorboard"], loggingDir: "team-a/exp_1.v2" });
    assert.ok(tb.ok);
    assert.equal(tb.value.config.loggingDir, "team-a/exp_1.v2");
  });

  it("refuses a folder that leaves TRAINER_TENSORBOARD_DIR or is unbounded, naming loggingDir", async () => {
    for (const loggingDir of [
      "../up",
      "a/../../b",
      "/etc",
      "a/..",
      ".",
      "a//b",
      "a\\b",
      `${"x/".repeat(8)}x`,
    ]) {
      assert.match(
        await refusal({ reportTo: ["tensorboard"], loggingDir }),
        /^loggingDir: a folder under TRAINER_TENSORBOARD_DIR/,
        loggingDir,
      );
    }
    assert.match(await refusal({ reportTo: ["tensorboard"], loggingDir: "a".repeat(256) }), /^loggingDir: /);
  });

  it("refuses loggingDir without tensorboard, and reporters it does not have", async () => {
    assert.equal(
      await refusal({ loggingDir: "mine" }),
      'loggingDir: TensorBoard files are written only with reportTo: ["tensorboard"]',
    );
    assert.match(await refusal({ reportTo: ["wandb"] }), /^reportTo\.0: /);
  });
});
