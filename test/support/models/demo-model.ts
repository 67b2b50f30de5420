/**
 * The demo base model, built one way for the local stack, the training tests and the journeys: the
 * demo base config (`infra/demo-base/config.json`, a small Llama) with seeded random weights (no real
 * weights can be downloaded here), built into int4 artifacts (block size 32, float math) that include
 * the training graph.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { buildArtifacts } from "@loracast/shared/model-builder";
import { type LoraOp, MODEL_MANIFEST } from "@loracast/shared/model-format";
// Imported, not read from DEMO_BASE_CONFIG's path: bundled (infra/images/bundle.sh), the config comes along.
import demoBaseConfig from "../../../infra/demo-base/config.json" with { type: "json" };
import { writeRandomCheckpoint } from "./random-checkpoint.ts";

/** The seed of the demo base's weights wherever the demo runs: `npm start` and the images' demo model. */
export const DEMO_SEED = 20261126;

/** Where `buildDemoModel` writes: the HF checkpoint and the built artifacts. */
export interface DemoModelPaths {
  /** The random HF checkpoint (`config.json`, `model.safetensors`); kept if already there. */
  checkpointDir: string;
  /** The artifacts; a folder that already holds a `loracast-model.json` is returned as it is. */
  modelDir: string;
}

/**
 * Writes the demo base checkpoint with weights from `seed` and builds its artifacts, with the LoRA
 * op `loraOp` (`BuildOptions.loraOp`, default `gemm`); returns `paths.modelDir`. Throws the
 * builder's error if the build fails.
 */
export async function buildDemoModel(
  paths: DemoModelPaths,
  seed: number,
  loraOp: LoraOp = "gemm",
): Promise<string> {
  if (existsSync(join(paths.modelDir, MODEL_MANIFEST))) return paths.modelDir;
  await writeRandomCheckpoint(paths.checkpointDir, demoBaseConfig, seed);
  const built = await buildArtifacts({
    checkpointDir: paths.checkpointDir,
    outDir: paths.modelDir,
    quant: { kind: "nbits", bits: 4, blockSize: 32, emulate: false },
    loraOp,
  });
  if (!built.ok) throw built.error;
  return paths.modelDir;
}
