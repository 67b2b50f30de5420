/**
 * The registry as the run config sees it: every algorithm selectable by name, its own config
 * narrowed (defaults, strict fields), and the checks derived from its record (rewards, dataset).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { describeConfigError, runConfigSchema } from "../config.ts";
import { datasetNeeds } from "../dataset.ts";
import { planRun } from "../run-plan.ts";
import { tinySpec } from "../testing/fakes.ts";
import { ALGORITHM_NAMES, algorithmConfigSchema, algorithmFor } from "./index.ts";

const base = { run: "r", steps: 2, dataset: { path: "/unused.jsonl" } };
const parse = (algorithm: unknown) => runConfigSchema.safeParse({ ...base, algorithm });

describe("algorithm registry", () => {
  it("selects every registered algorithm by name, each with its own samples per prompt", () => {
    assert.deepEqual(ALGORITHM_NAMES, ["grpo", "online_dpo", "sft", "rloo"]);
    const per = (c: unknown) => algorithmFor(algorithmConfigSchema.parse(c)).samplesPerPrompt;
    assert.equal(per({ name: "grpo" }), 8);
    assert.equal(per({ name: "grpo", numGenerations: 3 }), 3);
    assert.equal(per({ name: "online_dpo" }), 2);
    assert.equal(per({ name: "sft" }), 1);
    assert.equal(per({ name: "rloo", k: 6 }), 6);
    assert.deepEqual(
      ALGORITHM_NAMES.map((name) => algorithmFor(algorithmConfigSchema.parse({ name })).rollouts),
      [true, true, false, true],
    );
  });

  it("narrows the config to the named algorithm's schema: its defaults, and none of the others' fields", () => {
    const rloo = parse({ name: "rloo" });
    assert.ok(rloo.success);
    assert.deepEqual(rloo.data.algorithm, { name: "rloo", k: 2 });
    const dpo = parse({ name: "online_dpo" });
    assert.ok(dpo.success);
    assert.deepEqual(dpo.data.algorithm, { name: "online_dpo", beta: 0.1, lossType: "sigmoid" });

    const foreign = parse({ name: "rloo", numGenerations: 4 });
    assert.ok(!foreign.success);
    assert.match(describeConfigError(foreign.error), /^algorithm: .*numGenerations/);
    const unknown = parse({ name: "ppo" });
    assert.ok(!unknown.success);
    assert.match(describeConfigError(unknown.error), /^algorithm\.name: /);
    const low = parse({ name: "rloo", k: 1 });
    assert.ok(!low.success);
    assert.match(describeConfigError(low.error), /^algorithm\.k: RLOO needs k ≥ 2/);
  });

  it("derives the dataset's needs from the record: only an algorithm without rollouts reads completions", () => {
    const needs = (name: string) => {
      const c = parse({ name });
      assert.ok(c.success);
      return datasetNeeds(c.data).completion;
    };
    assert.deepEqual(ALGORITHM_NAMES.map(needs), [false, false, true, false]);
  });

  describe("planRun", () => {
    let dir = "";
    after(() => rm(dir, { recursive: true, force: true }));

    it("refuses an algorithm trained on rewards without a reward function, naming what they feed", async () => {
      dir = await mkdtemp(join(tmpdir(), "loracast-plan-"));
      const path = join(dir, "prompts.jsonl");
      await writeFile(path, `${JSON.stringify({ prompt: "q1:" })}\n`);
      const egress = { allowPrivate: false };
      const plan = (algorithm: unknown, rewards: unknown[] = []) =>
        planRun({ ...base, dataset: { path }, algorithm, rewards }, tinySpec(), egress);
      const rloo = await plan({ name: "rloo" });
      assert.ok(!rloo.ok);
      assert.equal(rloo.error.code, "invalid_config");
      assert.equal(
        rloo.error.message,
        "rewards: RLOO's advantages come from reward functions; give at least one",
      );
      const grpo = await plan({ name: "grpo" });
      assert.ok(!grpo.ok);
      assert.match(grpo.error.message, /^rewards: GRPO's advantages/);
      const ok = await plan({ name: "rloo", k: 3 }, [{ type: "json_valid" }]);
      assert.ok(ok.ok, ok.ok ? "" : ok.error.message);
      assert.equal(ok.value.lora.r, 8, "the LoRA comes converted to PEFT's config once, in the plan");
      assert.equal(ok.value.data.length, 1);
    });
  });
});
