/**
 * `npm run bench:engine` refuses what it cannot run before it builds anything: flags that need the
 * ort-native addon where the addon does not load (a fresh clone before `npm run build:ort-native`,
 * or LORACAST_ORT_NATIVE_ADDON naming no addon), and a bad item in a comma list, named. Each runs
 * as a real process with an empty work folder, which must stay empty.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ROOT } from "@loracast/dev-support/fixtures";
import { runProcess } from "../helpers/run-process.ts";

const work = mkdtempSync(join(tmpdir(), "bench-engine-"));
after(() => rmSync(work, { recursive: true, force: true }));

const bench = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runProcess(
    process.execPath,
    ["--import", "tsx", "test/bench/engine/main.ts", "--work", work, "--compare", "false", ...args],
    { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env } },
  );

describe("bench:engine refusals, before any build", () => {
  const absent = join(work, "absent.node");
  for (const args of [
    ["--lora-op", "shrink-expand", "--throughput", "false"],
    ["--lora-op", "both", "--throughput", "false"],
    ["--backend", "ort-native"],
  ])
    it(`${args.join(" ")} without a loadable addon: exit 2, one line naming the fix`, async () => {
      const r = await bench(args, { LORACAST_ORT_NATIVE_ADDON: absent });
      assert.equal(r.code, 2, r.output);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(
        lines[0] ?? "",
        /^error: --(lora-op|backend) \S+ needs the ort-native addon, which does not load \(not-built: /,
      );
      assert.match(lines[0] ?? "", /npm run build:ort-native/);
      assert.deepEqual(readdirSync(work), []);
    });

  it("a bad --lora-form item is named: exit 2", async () => {
    const r = await bench(["--lora-form", "gemm,foo"]);
    assert.equal(r.code, 2, r.output);
    assert.match(r.stderr, /^error: --lora-form: foo: /);
    assert.deepEqual(readdirSync(work), []);
  });
});
