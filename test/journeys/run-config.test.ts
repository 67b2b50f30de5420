/**
 * Run configs are checked completely before `POST /v1/runs` answers, on a real trainer with a base:
 * each config that cannot train gets 400 `invalid_config` naming its field (and the dataset line),
 * and no run is created for it. A config without `lora` trains with the documented default.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildDemoModel } from "@loracast/dev-support/models";
import { eventually } from "@loracast/dev-support/supervisor";
import { CONFIG_FILE, formatVersionRef, type VersionManifest, weightsFile } from "@loracast/shared/manifest";
import { decodeSafetensors } from "@loracast/shared/safetensors";
import { AdapterStore, S3ObjectStore } from "@loracast/shared/store";
import {
  runInfoSchema,
  runListSchema,
  runVersionsSchema,
  trainerErrorBodySchema,
} from "@loracast/shared/trainer-api";
import { s3Settings } from "../helpers/s3.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

/** The adapter_config.json a version was published with, parsed: what PEFT and the generators read. */
async function publishedConfig(
  store: AdapterStore,
  manifest: VersionManifest,
): Promise<Record<string, unknown>> {
  const file = manifest.adapter.files.find((f) => f.name === CONFIG_FILE);
  assert.ok(
    file !== undefined,
    `${formatVersionRef(manifest.run, manifest.version)} lists no ${CONFIG_FILE}`,
  );
  const bytes = await store.downloadBlob(file);
  assert.ok(bytes.ok, JSON.stringify(bytes));
  return JSON.parse(new TextDecoder().decode(bytes.value)) as Record<string, unknown>;
}

const post = (url: string, body: unknown) =>
  fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

describe("run configs are checked before the run is accepted", () => {
  let stack: Stack;
  let work: string;
  const data = (name: string, lines: unknown[]): string => {
    const path = join(work, `${name}.jsonl`);
    writeFileSync(path, lines.map((l) => JSON.stringify(l)).join("\n"));
    return path;
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-run-config-"));
    await buildDemoModel({ checkpointDir: join(work, "base"), modelDir: join(work, "model") }, 5);
    stack = await startStack({
      trainerEnv: { TRAINER_MODEL_DIR: join(work, "model"), TRAINER_THREADS: "1" },
    });
  });
  after(async () => {
    await stack?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  /** The run's info once it is no longer running. */
  const ended = (run: string) =>
    eventually(
      `${run} ends`,
      async () => {
        const info = runInfoSchema.parse(
          await (
            await fetch(`${stack.trainer.url}/v1/runs/${run}`, {
              headers: { authorization: `Bearer ${TOKEN}` },
            })
          ).json(),
        );
        return info.status === "running" ? undefined : info;
      },
      120_000,
      200,
    );

  const grpo = (run: string, dataset: string) => ({
    run,
    algorithm: { name: "grpo", numGenerations: 2 },
    dataset: { path: dataset },
    rewards: [{ type: "regex", pattern: "[0-9]" }],
    steps: 2,
    promptsPerStep: 2,
    sampling: { maxTokens: 4 },
  });

  it("answers 400 naming the field for each config that cannot train, and creates no run", async () => {
    const prompts = data("prompts", [{ prompt: "q1:" }, { prompt: "q2:" }]);
    const sftData = data("sft", [{ prompt: "a", completion: "1" }, { prompt: "b" }]);
    const answers = data("answers", [
      { prompt: "a", answer: 3 },
      { prompt: "b", answer: "three" },
    ]);
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        "typo-target",
        { ...grpo("typo-target", prompts), lora: { targetModules: ["q_proj", "qq_proj"] } },
        /^lora\.targetModules\.1: "qq_proj" selects no module of this base/,
      ],
      [
        "mixed-targets",
        { ...grpo("mixed-targets", prompts), lora: { targetModules: ["q_proj", 5] } },
        /^lora\.targetModules\.1: Invalid input: expected string, received number$/,
      ],
      [
        "number-targets",
        { ...grpo("number-targets", prompts), lora: { targetModules: 5 } },
        /^lora\.targetModules: Invalid input: expected array, received number; or Invalid input: expected string, received number$/,
      ],
      [
        "regex-selects-nothing",
        // A valid Python regex, but re.fullmatch needs it to match the whole module path.
        { ...grpo("regex-selects-nothing", prompts), lora: { targetModules: "(?P<x>q)_proj" } },
        /^lora\.targetModules: "\(\?P<x>q\)_proj" selects no module of this base \(a string other than "all-linear" is a Python regex that must match a whole module path, such as model\.layers\.0\./,
      ],
      [
        "regex-invalid",
        { ...grpo("regex-invalid", prompts), lora: { targetModules: "[" } },
        /^lora\.targetModules: not a supported regular expression: .*missing closing \]/,
      ],
      [
        "alpha-overflow",
        { ...grpo("alpha-overflow", prompts), lora: { alpha: 1e40 } },
        /^lora\.alpha: the LoRA scaling alpha \/ r = 1\.25e\+39 is not finite in float32$/,
      ],
      [
        "sft-no-completion",
        { ...grpo("sft-no-completion", sftData), algorithm: { name: "sft" } },
        /^dataset\.path: line 2: completion: /,
      ],
      ["grpo-no-rewards", { ...grpo("grpo-no-rewards", prompts), rewards: [] }, /^rewards: GRPO/],
      [
        "dpo-no-rewards",
        { ...grpo("dpo-no-rewards", prompts), algorithm: { name: "online_dpo" }, rewards: [] },
        /^rewards: online DPO/,
      ],
      [
        "numeric-no-answer",
        { ...grpo("numeric-no-answer", prompts), rewards: [{ type: "numeric_answer" }] },
        /^dataset\.path: line 1: answer: /,
      ],
      [
        "numeric-word",
        { ...grpo("numeric-word", answers), rewards: [{ type: "numeric_answer" }] },
        /^dataset\.path: line 2: answer: numeric_answer needs a number, got "three"/,
      ],
      [
        "bad-pattern",
        { ...grpo("bad-pattern", prompts), rewards: [{ type: "regex", pattern: "([0-9])\\1" }] },
        /^rewards\.0\.pattern: /,
      ],
    ];
    for (const [run, body, field] of cases) {
      const res = await post(`${stack.trainer.url}/v1/runs`, body);
      const text = await res.text();
      assert.equal(res.status, 400, `${run}: ${text}`);
      const { error } = trainerErrorBodySchema.parse(JSON.parse(text));
      assert.equal(error.code, "invalid_config", run);
      assert.match(error.message, field, run);
    }
    const { runs } = runListSchema.parse(
      await (
        await fetch(`${stack.trainer.url}/v1/runs`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json(),
    );
    assert.deepEqual(
      runs.map((r) => r.run),
      [],
      "no run was created for a refused config",
    );
  });

  it("a config without lora trains with the documented default (r 8, alpha 16, all-linear)", async () => {
    const res = await post(
      `${stack.trainer.url}/v1/runs`,
      grpo("default-lora", data("p", [{ prompt: "q:" }])),
    );
    assert.equal(res.status, 201, await res.clone().text());
    const created = runInfoSchema.parse(await res.json());
    assert.deepEqual(created.config.lora, { r: 8, alpha: 16, targetModules: "all-linear", rslora: false });
    const done = await ended("default-lora");
    assert.equal(done.status, "completed", JSON.stringify(done));
    const versions = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/default-lora/versions`)).json(),
    );
    const newest = versions.versions.at(-1);
    assert.ok(newest !== undefined && versions.versions.length >= 2, JSON.stringify(versions));
    // What was published is that LoRA: the trainer verified it against the base before publishing.
    const objects = new S3ObjectStore(s3Settings(stack.s3.url, "loracast"));
    try {
      const store = new AdapterStore(objects);
      const read = await store.readManifest(newest.manifestKey);
      assert.ok(read?.ok, JSON.stringify(read));
      const config = await publishedConfig(store, read.value.manifest);
      assert.deepEqual(
        { r: config.r, lora_alpha: config.lora_alpha, target_modules: config.target_modules },
        { r: 8, lora_alpha: 16, target_modules: "all-linear" },
      );
    } finally {
      objects.client.destroy();
    }
  });

  it("a string targetModules is a Python regex over whole module paths, as PEFT reads it", async () => {
    const run = "regex-targets";
    const res = await post(`${stack.trainer.url}/v1/runs`, {
      ...grpo(run, data("r", [{ prompt: "q:" }])),
      steps: 1,
      lora: { targetModules: ".*q_proj" },
    });
    assert.equal(res.status, 201, await res.clone().text());
    const done = await ended(run);
    assert.equal(done.status, "completed", JSON.stringify(done));
    const versions = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/${run}/versions`)).json(),
    );
    const newest = versions.versions.at(-1);
    assert.ok(newest !== undefined, JSON.stringify(versions));
    const objects = new S3ObjectStore(s3Settings(stack.s3.url, "loracast"));
    try {
      const store = new AdapterStore(objects);
      const read = await store.readManifest(newest.manifestKey);
      assert.ok(read?.ok, JSON.stringify(read));
      assert.equal((await publishedConfig(store, read.value.manifest)).target_modules, ".*q_proj");
      const weights = await store.downloadBlob(weightsFile(read.value.manifest));
      assert.ok(weights.ok);
      const file = decodeSafetensors(weights.value);
      assert.ok(file.ok);
      const keys = [...file.value.tensors.keys()];
      assert.ok(keys.length > 0);
      // Exactly the q_proj factors: what PEFT's re.fullmatch(".*q_proj", name) selects.
      assert.deepEqual(
        keys.filter((k) => !/\.self_attn\.q_proj\.lora_[AB]\.weight$/.test(k)),
        [],
      );
    } finally {
      objects.client.destroy();
    }
  });

  it("a run whose optimizer step makes the parameters non-finite skips those steps, then fails naming the cause", async () => {
    const run = "diverging";
    const res = await post(`${stack.trainer.url}/v1/runs`, {
      ...grpo(run, data("d", [{ prompt: "q:" }])),
      steps: 5,
      optimizer: { lr: 1e308, schedule: "constant" },
    });
    assert.equal(res.status, 201, await res.clone().text());
    const done = await ended(run);
    assert.equal(done.status, "failed", JSON.stringify(done));
    assert.match(
      done.error ?? "",
      /parameters became non-finite after the optimizer step at step 3 \(base_model\.model\..*lora_[AB]\.weight element \d+ is (NaN|-?Infinity); optimizer\.lr = 1e\+308\); 3 consecutive non-finite steps/,
    );
    // Only the initial (finite) adapter was published: every skipped step was undone.
    const versions = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/${run}/versions`)).json(),
    );
    assert.deepEqual(
      versions.versions.map((v) => v.version),
      [1],
    );
  });
});
