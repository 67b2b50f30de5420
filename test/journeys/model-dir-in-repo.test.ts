/**
 * Journey: a user builds a model into a folder inside the repository, as the README suggests
 * (`npm run build-model -- /path/to/hf-checkpoint ./my-model`), and then runs `npm test`. Its lint
 * and type-check must not trip over the model's files (JSON written by other tools, large weights).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture, ROOT } from "@loracast/dev-support/fixtures";

/** Runs a command in the repository root as a user's shell would; returns its status and output. */
function sh(command: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(command, args, { cwd: ROOT, encoding: "utf8", env: process.env });
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

describe("journey: a model dir inside the repository", () => {
  it("leaves npm test's lint and type-check green", { timeout: 600_000 }, () => {
    const name = `my-model-${process.pid}`;
    const modelDir = join(ROOT, name);
    const checkpoint = mkdtempSync(join(tmpdir(), "loracast-hf-checkpoint-"));
    try {
      // An HF checkpoint as hubs ship them: weights, config, and tokenizer files in their own JSON style.
      cpSync(join(fixture("llama-tiny"), "base"), checkpoint, { recursive: true });
      writeFileSync(
        join(checkpoint, "tokenizer_config.json"),
        JSON.stringify({
          bos_token: "<s>",
          eos_token: "</s>",
          model_max_length: 256,
          added_tokens_decoder: {},
        }),
      );
      const built = sh("npm", ["run", "build-model", "--", checkpoint, `./${name}`]);
      assert.equal(built.status, 0, built.output);

      const lint = sh("npx", ["biome", "check", "."]);
      assert.equal(lint.status, 0, `npm run lint with ./${name} in the repo:\n${lint.output}`);
      const types = sh("npx", ["tsc", "-p", "tsconfig.json"]);
      assert.equal(types.status, 0, `npm run typecheck with ./${name} in the repo:\n${types.output}`);
    } finally {
      rmSync(modelDir, { recursive: true, force: true });
      rmSync(checkpoint, { recursive: true, force: true });
    }
  });
});
