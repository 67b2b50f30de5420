/**
 * The registry as the run config sees it: every algorithm selectable by name, its own config
 * narrowed (defaults, strict fields), and the checks derived from its record (rewards, dataset).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
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
  // Properties every registered algorithm has: a fifth one is checked by these without an edit.
  const parsed = (name: string) => {
    const c = parse({ name });
    assert.ok(c.success, `${name} parses with its defaults`);
    return c.data;
  };

  it("registers each name once, each selecting its own record bound to its own defaults", () => {
    assert.ok(ALGORITHM_NAMES.length > 0);
    assert.equal(new Set(ALGORITHM_NAMES).size, ALGORITHM_NAMES.length, "names are unique");
    for (const name of ALGORITHM_NAMES) {
      const config = algorithmConfigSchema.parse({ name });
      assert.equal(config.name, name);
      assert.deepEqual(
        algorithmConfigSchema.parse(config),
        config,
        `${name}'s schema parses its own defaults`,
      );
      const bound = algorithmFor(config);
      assert.equal(bound.name, name);
      assert.ok(Number.isInteger(bound.samplesPerPrompt) && bound.samplesPerPrompt >= 1, name);
      if (!bound.rollouts)
        assert.equal(bound.samplesPerPrompt, 1, `${name} trains on one completion per prompt`);
    }
  });

  it("derives the dataset's needs from the record: exactly the algorithms without rollouts read completions", () => {
    for (const name of ALGORITHM_NAMES) {
      const config = parsed(name);
      assert.equal(datasetNeeds(config).completion, !algorithmFor(config.algorithm).rollouts, name);
    }
  });

  it("refuses an unknown name, and another algorithm's fields under a registered one", () => {
    const unknown = parse({ name: "no_such_algorithm" });
    assert.ok(!unknown.success);
    const message = describeConfigError(unknown.error);
    assert.match(message, /^algorithm\.name: /);
    for (const name of ALGORITHM_NAMES) assert.ok(message.includes(`'${name}'`), `${message} names ${name}`);

    const foreign = parse({ name: "rloo", numGenerations: 4 });
    assert.ok(!foreign.success);
    assert.match(describeConfigError(foreign.error), /^algorithm: .*numGenerations/);
  });

  it("lists every registered algorithm in README's algorithm paragraph", async () => {
    const readme = await readFile(join(import.meta.dirname, "../../../../../README.md"), "utf8");
    const paragraph = readme.split("\n\n").find((p) => p.startsWith("Algorithms: "));
    assert.ok(paragraph !== undefined, "README has a paragraph starting 'Algorithms: '");
    for (const name of ALGORITHM_NAMES)
      assert.ok(paragraph.includes(`\`${name}\``), `README names \`${name}\``);
  });

  // The four the repository ships with: what each selects and defaults to.
  it("registers grpo, online_dpo, sft and rloo, each with its own samples per prompt", () => {
    for (const name of ["grpo", "online_dpo", "sft", "rloo"] as const)
      assert.ok(ALGORITHM_NAMES.includes(name), name);
    const per = (c: unknown) => algorithmFor(algorithmConfigSchema.parse(c)).samplesPerPrompt;
    assert.equal(per({ name: "grpo" }), 8);
    assert.equal(per({ name: "grpo", numGenerations: 3 }), 3);
    assert.equal(per({ name: "online_dpo" }), 2);
    assert.equal(per({ name: "sft" }), 1);
    assert.equal(per({ name: "rloo", k: 6 }), 6);
    const rollouts = (name: string) => algorithmFor(algorithmConfigSchema.parse({ name })).rollouts;
    assert.deepEqual(["grpo", "online_dpo", "sft", "rloo"].map(rollouts), [true, true, false, true]);
  });

  it("narrows the config to the named algorithm's schema: its defaults, and none of the others' fields", () => {
    assert.deepEqual(parsed("rloo").algorithm, { name: "rloo", k: 2 });
    assert.deepEqual(parsed("online_dpo").algorithm, { name: "online_dpo", beta: 0.1, lossType: "sigmoid" });
    const low = parse({ name: "rloo", k: 1 });
    assert.ok(!low.success);
    assert.match(describeConfigError(low.error), /^algorithm\.k: RLOO needs k ≥ 2/);
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
        planRun({ ...base, dataset: { path }, algorithm, rewards }, tinySpec(), egress, dir);
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
