/**
 * npm run build-model -- <checkpoint-dir> <out-dir> [--quant fp32|fp16|int8|int4] [--block-size 32|128]
 *   [--accuracy-level 0|4] [--merge <peft-adapter-dir>] [--format loracast|transformers.js]
 *
 * Builds model artifacts (model.onnx, model.onnx.data, loracast-model.json, tokenizer files) from a
 * Hugging Face checkpoint, for generators (GENERATOR_MODEL_DIR) and the trainer. `--merge` folds a
 * PEFT adapter into the weights (a base that takes no adapters); `--format transformers.js` writes
 * the same decoder for transformers.js instead.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type BaseQuant, buildArtifacts } from "@loracast/shared/model-builder";
import { loadModelSpec, type VerifiedAdapter, verifyAdapterFiles } from "@loracast/shared/model-spec";

const usage =
  "usage: npm run build-model -- <checkpoint-dir> <out-dir> [--quant fp32|fp16|int8|int4] [--block-size 32|128] [--accuracy-level 0|4] [--merge <peft-adapter-dir>] [--format loracast|transformers.js]";
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quant: { type: "string", default: "int4" },
    "block-size": { type: "string", default: "32" },
    "accuracy-level": { type: "string", default: "4" },
    merge: { type: "string" },
    format: { type: "string", default: "loracast" },
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
  case "fp16":
    quant = { kind: values.quant };
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
    console.error(`--quant must be fp32, fp16, int8 or int4\n${usage}`);
    process.exit(2);
}
if (values["accuracy-level"] !== "0" && values["accuracy-level"] !== "4") {
  console.error(`--accuracy-level must be 0 or 4\n${usage}`);
  process.exit(2);
}
const format = values.format;
if (format !== "loracast" && format !== "transformers.js") {
  console.error(`--format must be loracast or transformers.js\n${usage}`);
  process.exit(2);
}
let merge: VerifiedAdapter | undefined;
if (values.merge !== undefined) {
  const spec = await loadModelSpec(join(checkpointDir, "config.json"));
  if (!spec.ok) {
    console.error(`build failed: ${spec.error.message}`);
    process.exit(1);
  }
  const checked = verifyAdapterFiles(
    spec.value,
    await readFile(join(values.merge, "adapter_config.json"), "utf8"),
    await readFile(join(values.merge, "adapter_model.safetensors")),
  );
  if (!checked.ok) {
    console.error(`--merge: ${checked.error}`);
    process.exit(1);
  }
  merge = checked.value.verified;
}
const started = performance.now();
const built = await buildArtifacts({
  checkpointDir: resolve(checkpointDir),
  outDir: resolve(outDir),
  quant,
  format,
  ...(merge !== undefined ? { merge } : {}),
});
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
