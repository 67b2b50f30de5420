/**
 * `dataset.path` as the trainer reads it: a relative path is the trainer's working directory's
 * (services/trainer under `npm -w`), and a file it cannot read is named as resolved there, so a
 * config written for another folder says where the trainer looked.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadDataset } from "./dataset.ts";

const needs = { completion: false, answer: null } as const;

describe("loadDataset's path", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "dataset-path-"));
    await writeFile(join(dir, "data.jsonl"), `${JSON.stringify({ prompt: "q1:" })}\n`);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("reads a relative path from the working directory", async () => {
    const data = await loadDataset(relative(process.cwd(), join(dir, "data.jsonl")), needs);
    assert.ok(data.ok, data.ok ? "" : data.error.message);
    assert.deepEqual(data.value, [{ prompt: "q1:", answer: null, completion: null }]);
  });

  it("names a relative path it cannot read as given and as resolved against the working directory", async () => {
    const given = relative(process.cwd(), join(dir, "missing.jsonl"));
    const data = await loadDataset(given, needs);
    assert.ok(!data.ok);
    assert.equal(data.error.code, "invalid_config");
    assert.ok(
      data.error.message.startsWith(
        `dataset.path: cannot read ${given} (relative to the trainer's working directory: ${resolve(given)}): ENOENT`,
      ),
      data.error.message,
    );
  });

  it("names an absolute path it cannot read as given, once", async () => {
    const given = join(dir, "missing.jsonl");
    const data = await loadDataset(given, needs);
    assert.ok(!data.ok);
    assert.ok(
      data.error.message.startsWith(`dataset.path: cannot read ${given}: ENOENT`),
      data.error.message,
    );
  });
});
