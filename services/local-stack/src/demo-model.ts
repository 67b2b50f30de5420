/**
 * The demo base model: a Llama with the demo config and seeded random weights (no real weights can
 * be downloaded here), built into int4 artifacts once per data dir.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { buildArtifacts, MODEL_MANIFEST, writeRandomCheckpoint } from "@loracast/shared/model-builder";

export async function ensureDemoModel(dataDir: string, baseConfig: string, seed: number): Promise<string> {
  const modelDir = join(dataDir, "demo-model");
  if (existsSync(join(modelDir, MODEL_MANIFEST))) return modelDir;
  const checkpoint = join(dataDir, "demo-base");
  await writeRandomCheckpoint(checkpoint, JSON.parse(readFileSync(baseConfig, "utf8")), seed);
  const built = await buildArtifacts({
    checkpointDir: checkpoint,
    outDir: modelDir,
    quant: { kind: "nbits", bits: 4, blockSize: 32, emulate: false },
  });
  if (!built.ok) throw built.error;
  return modelDir;
}
