/**
 * node build-demo-model.mjs <model-dir>
 *
 * Builds the demo base model into <model-dir> (`buildDemoModel` with the local stack's seed, so the
 * containers serve the same weights as `npm start`), or leaves a directory that already holds one as
 * it is, and writes the demo's prompts (64 lines `{"prompt": "q<n>:"}`, as `npm start`'s demo run
 * uses) beside it as `demo-prompts.jsonl`, a dataset a GRPO run can name. The images' model step: the compose file's `demo-model` service and the container smoke
 * test run it bundled (infra/images/bundle.sh) from the trainer image, into the volume the trainer
 * and the generators mount. Exits 2 on a usage error, 1 if the build fails.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { buildDemoModel, DEMO_SEED } from "./demo-model.ts";

const [modelDir, ...extra] = process.argv.slice(2);
if (modelDir === undefined || extra.length > 0 || modelDir.startsWith("-")) {
  console.error("usage: node build-demo-model.mjs <model-dir>");
  process.exit(2);
}
// The random checkpoint is an input of the build only; it goes to the temp dir and is removed.
const checkpointDir = mkdtempSync(join(tmpdir(), "demo-base-"));
try {
  await buildDemoModel({ checkpointDir, modelDir }, DEMO_SEED);
  const dataset = join(dirname(resolve(modelDir)), "demo-prompts.jsonl");
  writeFileSync(
    dataset,
    Array.from({ length: 64 }, (_, i) => JSON.stringify({ prompt: `q${i * 37}:` })).join("\n"),
  );
  console.log(JSON.stringify({ msg: "demo model ready", modelDir, dataset }));
} catch (e) {
  console.error(`demo model build failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  rmSync(checkpointDir, { recursive: true, force: true });
}
