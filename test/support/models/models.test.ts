import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { MODEL_FILE, readModelManifest } from "@loracast/shared/model-format";
import { loadModelSpec } from "@loracast/shared/model-spec";
import { DEMO_BASE_CONFIG } from "../fixtures/index.ts";
import { buildDemoModel } from "./index.ts";

describe("buildDemoModel", () => {
  it("builds the demo base to int4 artifacts with the training graph, and reuses them after", async () => {
    const work = mkdtempSync(join(tmpdir(), "loracast-demo-model-"));
    try {
      const paths = { checkpointDir: join(work, "base"), modelDir: join(work, "model") };
      const dir = await buildDemoModel(paths, 3);
      assert.equal(dir, paths.modelDir);
      const read = await readModelManifest(dir);
      assert.ok(read.ok);
      assert.equal(read.value.manifest.quant.kind, "int4");
      assert.equal(read.value.manifest.quant.blockSize, 32);
      assert.ok(read.value.manifest.files.training !== undefined);
      // The demo base, whatever the weights: the base fingerprint is its config's.
      const spec = await loadModelSpec(DEMO_BASE_CONFIG);
      assert.ok(spec.ok);
      assert.equal(read.value.spec.fingerprint, spec.value.fingerprint);
      // A second call (the local stack's next start) finds the manifest and builds nothing.
      const built = statSync(join(dir, MODEL_FILE)).mtimeMs;
      assert.equal(await buildDemoModel(paths, 4), dir);
      assert.equal(statSync(join(dir, MODEL_FILE)).mtimeMs, built);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
