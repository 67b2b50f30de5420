/**
 * npm run build-model -- <checkpoint-dir> <out-dir> [--quant fp32|fp16|int8|int4] [--block-size 32|128]
 *   [--accuracy-level 0|4] [--merge <peft-adapter-dir>] [--format loracast|transformers.js]
 *   [--attention ops|gqa] [--kv-cache-dtype float32|float16] [--lora-form gemm|matmul|mulsum|splitk|splitk-t]
 *   [--lora-op gemm|shrink-expand]
 *
 * Builds model artifacts (model.onnx and model.append.onnx, their base-request counterparts model.base.onnx and model.base.append.onnx, train.onnx, model.onnx.data, loracast-model.json, and the checkpoint's tokenizer files where it has them) from a
 * Hugging Face checkpoint, for generators (GENERATOR_MODEL_DIR) and the trainer. `--merge` folds a
 * PEFT adapter into the weights (a base that takes no adapters); `--format transformers.js` writes
 * the same decoder for transformers.js instead. `--attention gqa` builds the decoder's attention as
 * one ORT GroupQueryAttention node per layer (the GPU's graph; docs/architecture.md);
 * `--kv-cache-dtype float16` with it computes attention and keeps the KV cache in float16, as ORT's
 * CUDA GroupQueryAttention kernel requires. `--lora-form` picks how each LoRA pair's first product is
 * computed (shared/model-builder/lora-forms.ts): `splitk-t` is the WebGPU build's, `gemm` (the
 * default) the CPU's and CUDA's. `--lora-op shrink-expand` builds each LoRA branch of the generation
 * graphs as one fused `ai.loracast` `LoraShrinkExpand` node instead, which only the ort-native addon
 * runs.
 */
import { access, constants, mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type BaseQuant, buildArtifacts } from "@loracast/shared/model-builder";
import { kvCacheDtypeSchema, loraFormSchema, loraOpSchema } from "@loracast/shared/model-format";
import { loadModelSpec, type VerifiedAdapter, verifyAdapterFiles } from "@loracast/shared/model-spec";
import { parseCommandLine, usageError } from "@loracast/shared/platform";

const cli = {
  usage: "npm run build-model -- <checkpoint-dir> <out-dir> [flags]",
  about:
    "Builds model artifacts (model.onnx and model.append.onnx, their base-request counterparts model.base.onnx and model.base.append.onnx, train.onnx, model.onnx.data, loracast-model.json, and the checkpoint's tokenizer files where it has them) from a Hugging Face checkpoint, for generators (GENERATOR_MODEL_DIR) and the trainer (TRAINER_MODEL_DIR). Reads no environment variables.",
  positionals: true,
  flags: {
    quant: { type: "string", default: "int4", help: "base weights: fp32, fp16, int8 or int4" },
    "block-size": { type: "string", default: "32", help: "int8/int4 quantization block: 32 or 128" },
    "accuracy-level": {
      type: "string",
      default: "4",
      help: "MatMulNBits accuracy level: 0 (fp32 compute) or 4 (int8 compute)",
    },
    merge: {
      type: "string",
      help: "a PEFT adapter directory to fold into the weights (a base that takes no adapters)",
    },
    format: {
      type: "string",
      default: "loracast",
      help: "loracast, or transformers.js for the same decoder",
    },
    attention: {
      type: "string",
      default: "ops",
      help: "the decoder's attention: ops (plain ONNX ops) or gqa (one GroupQueryAttention node per layer)",
    },
    "kv-cache-dtype": {
      type: "string",
      default: "float32",
      help: "the KV cache's element type: float32, or float16 with --attention gqa (what ORT's CUDA kernel takes)",
    },
    "lora-form": {
      type: "string",
      default: "gemm",
      help: "how each LoRA pair's x·Aᵀ is computed: gemm, matmul, mulsum, splitk or splitk-t (the WebGPU build's)",
    },
    "lora-op": {
      type: "string",
      default: "gemm",
      help: "each LoRA branch of the generation graphs: gemm (ONNX ops, in --lora-form) or shrink-expand (one ai.loracast LoraShrinkExpand node, --lora-form gemm only: the generator and trainer then run them on the ort-native addon only)",
    },
  },
} as const;
const { values, positionals } = parseCommandLine(cli);
const fail: (message: string) => never = (message) => usageError(cli, message);
const [checkpointDir, outDir] = positionals;
const blockSize = Number(values["block-size"]);
if (checkpointDir === undefined || outDir === undefined || positionals.length !== 2)
  fail("expected a checkpoint directory and an output directory");
if (blockSize !== 32 && blockSize !== 128)
  fail(`--block-size must be 32 or 128, got ${values["block-size"]}`);
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
    quant = fail(`--quant must be fp32, fp16, int8 or int4, got ${values.quant}`);
}
if (values["accuracy-level"] !== "0" && values["accuracy-level"] !== "4")
  fail(`--accuracy-level must be 0 or 4, got ${values["accuracy-level"]}`);
const format = values.format;
if (format !== "loracast" && format !== "transformers.js")
  fail(`--format must be loracast or transformers.js, got ${format}`);
const attention = values.attention;
if (attention !== "ops" && attention !== "gqa") fail(`--attention must be ops or gqa, got ${attention}`);
if (attention === "gqa" && format !== "loracast") fail("--attention gqa needs --format loracast");
const kvCacheDtype = kvCacheDtypeSchema.safeParse(values["kv-cache-dtype"]);
if (!kvCacheDtype.success)
  fail(`--kv-cache-dtype must be float32 or float16, got ${values["kv-cache-dtype"]}`);
if (kvCacheDtype.data === "float16" && attention !== "gqa")
  fail("--kv-cache-dtype float16 needs --attention gqa");
const loraForm = loraFormSchema.safeParse(values["lora-form"]);
if (!loraForm.success)
  fail(`--lora-form must be one of ${loraFormSchema.options.join(", ")}, got ${values["lora-form"]}`);
if (loraForm.data !== "gemm" && (format !== "loracast" || values.merge !== undefined))
  fail("--lora-form other than gemm needs LoRA inputs: --format loracast and no --merge");
const loraOp = loraOpSchema.safeParse(values["lora-op"]);
if (!loraOp.success) fail(`--lora-op must be gemm or shrink-expand, got ${values["lora-op"]}`);
if (loraOp.data !== "gemm" && (format !== "loracast" || values.merge !== undefined))
  fail(`--lora-op ${loraOp.data} needs LoRA inputs: not with --merge or --format transformers.js`);
if (loraOp.data === "shrink-expand" && loraForm.data !== "gemm")
  fail("--lora-op shrink-expand takes --lora-form gemm only (its node computes the whole branch)");
// The output directory, made (or found writable) before minutes of building, so that a path that
// cannot be one is a line, not a stack trace at the first write.
try {
  await mkdir(resolve(outDir), { recursive: true });
  await access(resolve(outDir), constants.W_OK);
} catch (e) {
  fail(`cannot write the output directory ${outDir}: ${e instanceof Error ? e.message : String(e)}`);
}
let merge: VerifiedAdapter | undefined;
if (values.merge !== undefined) {
  const spec = await loadModelSpec(join(checkpointDir, "config.json"));
  if (!spec.ok) {
    console.error(`build failed: ${spec.error.message}`);
    process.exit(1);
  }
  const read = async <T>(what: () => Promise<T>): Promise<T> => {
    try {
      return await what();
    } catch (e) {
      return fail(
        `--merge: cannot read the adapter in ${values.merge}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  };
  const checked = verifyAdapterFiles(
    spec.value,
    await read(() => readFile(join(values.merge as string, "adapter_config.json"), "utf8")),
    await read(() => readFile(join(values.merge as string, "adapter_model.safetensors"))),
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
  attention,
  kvCacheDtype: kvCacheDtype.data,
  loraOp: loraOp.data,
  loraForm: loraForm.data,
  ...(merge !== undefined ? { merge } : {}),
}).catch((e: unknown) => {
  // A write that fails midway (a full disk, a directory made read-only) is the system's error, said
  // in a line; anything else is a builder bug and keeps its stack.
  if (e instanceof Error && "code" in e && "syscall" in e) {
    console.error(`build failed: ${e.message}`);
    process.exit(1);
  }
  throw e;
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
