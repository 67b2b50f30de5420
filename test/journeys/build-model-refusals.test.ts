/**
 * Journey: `npm run build-model` given an output it cannot write, or a `--merge` adapter it cannot
 * read, says so in a line and exits 2 before building, instead of a stack trace minutes in (the
 * fresh review of session 18 found ENOTDIR thrown from the partial file's cleanup).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fixture, ROOT } from "@loracast/dev-support/fixtures";

const MAIN = join(ROOT, "services", "model-builder", "src", "main.ts");

function buildModel(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", MAIN, join(fixture("qwen2-tiny"), "base"), ...args],
    {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    },
  );
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe("journey: build-model refuses what it cannot write or read", () => {
  const dir = mkdtempSync(join(tmpdir(), "build-model-refusals-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("an output path under a file: exit 2, one error line naming it, no stack trace", () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    const r = buildModel([join(file, "model")]);
    assert.equal(r.status, 2, r.stderr);
    const first = r.stderr.split("\n")[0] ?? "";
    assert.match(first, /^error: cannot write the output directory .*a-file\/model: ENOTDIR/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    assert.equal(r.stdout, "");
  });

  it("a --merge directory without an adapter: exit 2, one error line naming it", () => {
    const r = buildModel([join(dir, "out"), "--merge", join(dir, "no-adapter")]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr.split("\n")[0] ?? "",
      /^error: --merge: cannot read the adapter in .*no-adapter: ENOENT/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });
});
