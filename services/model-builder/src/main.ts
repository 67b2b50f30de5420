/**
 * npm run build-model -- <checkpoint-dir> <out-dir> [--quant fp32|int8|int4] [--block-size 32|128]
 *
 * Builds model artifacts (model.onnx, model.onnx.data, loracast-model.json, tokenizer files) from a
 * Hugging Face checkpoint, for generators (GENERATOR_MODEL_DIR) and the trainer.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type BaseQuant, buildArtifacts } from "@loracast/shared/model-builder";

const usage =
  "usage: npm run build-model -- <checkpoint-dir> <out-dir> [--quant fp32|int8|int4] [--block-size 32|128]";
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quant: { type: "string", default: "int4" },
    "block-size": { type: "string", default: "32" },
    "accuracy-level": { type: "string", default: "0" },
  },
});
const [checkpointDir, outDir] = positionals;
const blockSize = Number(values["block-size"]);
if (checkpointDir === undefined || outDir === undefined || positionals.length !== 2) {
  console.error(usage);
  process.exit(2);
}
if (blockSize !== 32 && blockSize !== 128) {
  console.error(`--block-size must be 32 or 128\n${usage}`);
  process.exit(2);
}
let quant: BaseQuant;
switch (values.quant) {
  case "fp32":
    quant = { kind: "fp32" };
    break;
  case "int8":
  case "int4":
    quant = {
      kind: "nbits",
      bits: values.quant === "int8" ? 8 : 4,
      blockSize,
      emulate: false,
      accuracyLevel: values["accuracy-level"] === "4" ? 4 : 0,
    };
    break;
  default:
    console.error(`--quant must be fp32, int8 or int4\n${usage}`);
    process.exit(2);
}
const started = performance.now();
const built = await buildArtifacts({ checkpointDir: resolve(checkpointDir), outDir: resolve(outDir), quant });
if (!built.ok) {
  console.error(`build failed: ${built.error.message}`);
  process.exit(1);
}
console.log(
  JSON.stringify({
    outDir: resolve(outDir),
    fingerprint: built.value.fingerprint,
    architecture: built.value.architecture,
    quant: built.value.quant,
    modules: built.value.modules.length,
    seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
  }),
);
