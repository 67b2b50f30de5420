/**
 * `dataset.path` as the trainer reads it: a relative path is the trainer's working directory's
 * (services/trainer under `npm -w`), made absolute once when the run is posted, so the run keeps
 * reading that file when the trainer restarts elsewhere; a file it cannot read is named as given and
 * as resolved, so a config written for another folder says where the trainer looked. The working
 * directory is injected (`planRun`'s `cwd`), never `process.chdir`.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { withAbsoluteDatasetPath } from "./config.ts";
import { loadDataset, MAX_DATASET_BYTES } from "./dataset.ts";
import { replanRun } from "./run-plan.ts";
import { planGrpoRun, tinySpec } from "./testing/fakes.ts";

const needs = { completion: false, answer: null } as const;

describe("dataset.path", () => {
  /** The trainer's working directory when the run is posted: not this process's. */
  let cwd: string;
  /** Where a restarted trainer runs from: no data/ folder there. */
  let elsewhere: string;
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), "dataset-path-"));
    elsewhere = await mkdtemp(join(tmpdir(), "dataset-path-elsewhere-"));
    await mkdir(join(cwd, "data"));
    await writeFile(join(cwd, "data", "prompts.jsonl"), `${JSON.stringify({ prompt: "q1:" })}\n`);
  });
  after(async () => {
    await rm(cwd, { recursive: true, force: true });
    await rm(elsewhere, { recursive: true, force: true });
  });

  const post = (path: string, at: string) => planGrpoRun(path, at);

  it("stores a posted relative path absolute, resolved against the trainer's working directory", async () => {
    assert.notEqual(process.cwd(), cwd);
    const plan = await post("data/prompts.jsonl", cwd);
    assert.ok(plan.ok, plan.ok ? "" : plan.error.message);
    assert.equal(plan.value.config.dataset.path, join(cwd, "data", "prompts.jsonl"));
    assert.deepEqual(plan.value.data, [{ prompt: "q1:", answer: null, completion: null }]);
  });

  it("resumes from the stored absolute path when the trainer restarts in another directory", async () => {
    const plan = await post("data/prompts.jsonl", cwd);
    assert.ok(plan.ok, plan.ok ? "" : plan.error.message);
    // As the run's record holds it (JSON on disk), loaded by a trainer started elsewhere.
    const stored = withAbsoluteDatasetPath(JSON.parse(JSON.stringify(plan.value.config)), elsewhere);
    assert.equal(stored.dataset.path, join(cwd, "data", "prompts.jsonl"));
    const resumed = await replanRun(stored, tinySpec());
    assert.ok(resumed.ok, resumed.ok ? "" : resumed.error.message);
    assert.deepEqual(resumed.value.data, plan.value.data);
    // The relative path alone would now name another file, which does not exist.
    const moved = await post("data/prompts.jsonl", elsewhere);
    assert.ok(!moved.ok);
  });

  it("names a relative path it cannot read as given and as resolved against the working directory", async () => {
    const plan = await post("data/missing.jsonl", cwd);
    assert.ok(!plan.ok);
    assert.equal(plan.error.code, "invalid_config");
    assert.ok(
      plan.error.message.startsWith(
        `dataset.path: cannot read data/missing.jsonl (relative to the trainer's working directory: ${join(cwd, "data", "missing.jsonl")}): ENOENT`,
      ),
      plan.error.message,
    );
  });

  it("keeps an absolute path as given and names it, once, when it cannot read it", async () => {
    const given = join(cwd, "data", "prompts.jsonl");
    const plan = await post(given, elsewhere);
    assert.ok(plan.ok, plan.ok ? "" : plan.error.message);
    assert.equal(plan.value.config.dataset.path, given);
    const missing = join(cwd, "missing.jsonl");
    const data = await loadDataset(missing, needs, missing);
    assert.ok(!data.ok);
    assert.ok(
      data.error.message.startsWith(`dataset.path: cannot read ${missing}: ENOENT`),
      data.error.message,
    );
  });
  it("refuses what is not a regular file at once, a FIFO included, instead of waiting for a writer", async () => {
    const fifo = join(cwd, "prompts.fifo");
    execFileSync("mkfifo", [fifo]);
    for (const path of [fifo, join(cwd, "data")]) {
      const data = await loadDataset(path, needs, path);
      assert.ok(!data.ok);
      assert.equal(data.error.message, `dataset.path: ${path} is not a regular file`);
    }
  });

  it("refuses a file over MAX_DATASET_BYTES without reading it", async () => {
    const big = join(cwd, "big.jsonl");
    await writeFile(big, "");
    await truncate(big, MAX_DATASET_BYTES + 1); // sparse: no bytes written
    const data = await loadDataset(big, needs, big);
    assert.ok(!data.ok);
    assert.equal(
      data.error.message,
      `dataset.path: ${big} is ${MAX_DATASET_BYTES + 1} bytes, above the ${MAX_DATASET_BYTES}-byte bound on a dataset`,
    );
  });
});
