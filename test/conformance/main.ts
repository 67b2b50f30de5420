/**
 * npm run conformance -- <fixture-dir> [--quant fp32|int8|int4] [--block-size 32|128] [--ep cpu|webgpu|cuda]
 *   [--tf32 on|off] [--attention ops|gqa] [--kv-cache-dtype float32|float16]
 *   [--backend auto|ort-native|onnxruntime-node] [--lora-form auto|gemm|matmul|mulsum|splitk|splitk-t]
 *   [--lora-op gemm|shrink-expand]
 *
 * Builds the fixture's base, applies its PEFT adapter, runs it on the execution provider `--ep`,
 * and prints a JSON report as the last line (with the tolerances it was held to, and why).
 * Exits 0 when the report says pass, 1 when it does not, 2 on bad usage or a broken fixture.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { kvCacheDtypeSchema, loraFormSchema, loraOpSchema } from "@loracast/shared/model-format";
import { parseCommandLine, usageError } from "@loracast/shared/platform";
import { executionProviderSchema, ortBackendSchema } from "@loracast/shared/runtime";
import { runConformance } from "./harness.ts";
import type { QuantChoice } from "./options.ts";

const cli = {
  usage: "npm run conformance -- <fixture-dir> [flags]",
  about:
    "Builds the fixture's base, applies its PEFT adapter, runs it on --ep, and prints a JSON report as the last line: exit 0 when it passes, 1 when it does not, 2 on bad usage or a broken fixture. Reads no environment variables but the ort-native addon loader's LORACAST_ORT_NATIVE_ADDON (the addon's path, for --backend ort-native and --lora-op shrink-expand; default shared/ort-native/build/ort-native.node).",
  positionals: true,
  flags: {
    quant: { type: "string", default: "fp32", help: "base weights: fp32, int8 or int4" },
    "block-size": { type: "string", default: "32", help: "int8/int4 quantization block: 32 or 128" },
    ep: { type: "string", default: "cpu", help: "execution provider: cpu, webgpu or cuda" },
    tf32: {
      type: "string",
      help: "cuda only: off (the default: what the decoder runs on ort-native, its use_tf32, and NVIDIA_TF32_OVERRIDE=0 for this process) or on (ORT's own default, the stock binding's)",
    },
    backend: {
      type: "string",
      default: "auto",
      help: "the decoder's ORT binding: auto (ort-native on cuda where it loads), ort-native or onnxruntime-node",
    },
    attention: {
      type: "string",
      default: "ops",
      help: "the decoder's attention: ops, or gqa (GroupQueryAttention; also compared with ops)",
    },
    "kv-cache-dtype": {
      type: "string",
      default: "float32",
      help: "the GQA decoder's KV cache: float32, or float16 (CUDA's GroupQueryAttention; fp16 tolerances)",
    },
    "lora-form": {
      type: "string",
      default: "auto",
      help: "how the decoder computes each LoRA pair's x·Aᵀ (build-model --lora-form): auto (the EP's build: splitk-t on webgpu, gemm elsewhere; gemm with --lora-op shrink-expand), gemm, matmul, mulsum, splitk or splitk-t",
    },
    "lora-op": {
      type: "string",
      default: "gemm",
      help: "the decoder's LoRA branches: gemm (ONNX ops, in --lora-form) or shrink-expand (one ai.loracast LoraShrinkExpand node each; the ort-native addon only)",
    },
  },
} as const;
const fail: (message: string) => never = (message) => usageError(cli, message);

const { values, positionals } = parseCommandLine(cli);
const dir = positionals[0];
if (dir === undefined || positionals.length > 1) fail("expected exactly one fixture directory");
const quant = values.quant as QuantChoice;
if (!["fp32", "int8", "int4"].includes(quant)) fail(`--quant must be fp32, int8 or int4, got ${quant}`);
const blockSize = Number(values["block-size"]);
if (blockSize !== 32 && blockSize !== 128)
  fail(`--block-size must be 32 or 128, got ${values["block-size"]}`);
const ep = executionProviderSchema.safeParse(values.ep);
if (!ep.success) fail(`--ep must be cpu, webgpu or cuda, got ${values.ep}`);
if (values.tf32 !== undefined && values.tf32 !== "on" && values.tf32 !== "off")
  fail(`--tf32 must be on or off, got ${values.tf32}`);
if (values.tf32 !== undefined && ep.data !== "cuda") fail("--tf32 applies to --ep cuda only");

const backend = ortBackendSchema.safeParse(values.backend);
if (!backend.success) fail(`--backend must be auto, ort-native or onnxruntime-node, got ${values.backend}`);

const attention = values.attention;
if (attention !== "ops" && attention !== "gqa") fail(`--attention must be ops or gqa, got ${attention}`);
const kvCacheDtype = kvCacheDtypeSchema.safeParse(values["kv-cache-dtype"]);
if (!kvCacheDtype.success)
  fail(`--kv-cache-dtype must be float32 or float16, got ${values["kv-cache-dtype"]}`);
if (kvCacheDtype.data === "float16" && attention !== "gqa")
  fail("--kv-cache-dtype float16 needs --attention gqa");
const loraOp = loraOpSchema.safeParse(values["lora-op"]);
if (!loraOp.success) fail(`--lora-op must be gemm or shrink-expand, got ${values["lora-op"]}`);
if (loraOp.data === "shrink-expand" && backend.data === "onnxruntime-node")
  fail("--lora-op shrink-expand runs on the ort-native addon only: --backend auto or ort-native");
if (loraOp.data === "shrink-expand" && ep.data === "webgpu")
  fail("--lora-op shrink-expand runs on the ort-native addon, on --ep cpu or cuda only");

const loraForm = values["lora-form"] === "auto" ? null : loraFormSchema.safeParse(values["lora-form"]);
if (loraForm !== null && !loraForm.success)
  fail(`--lora-form must be auto or one of ${loraFormSchema.options.join(", ")}, got ${values["lora-form"]}`);
if (loraOp.data === "shrink-expand" && loraForm !== null && loraForm.data !== "gemm")
  fail("--lora-op shrink-expand takes --lora-form gemm (or auto) only: its node computes the whole branch");

const workDir = await mkdtemp(join(tmpdir(), "loracast-conformance-"));
try {
  const report = await runConformance({
    fixtureDir: resolve(dir),
    quant,
    blockSize,
    attention,
    kvCacheDtype: kvCacheDtype.data,
    loraOp: loraOp.data,
    workDir,
    ep: ep.data,
    tf32: values.tf32 === "on",
    backend: backend.data,
    ...(loraForm === null ? {} : { loraForm: loraForm.data }),
  });
  console.log(JSON.stringify(report));
  process.exitCode = report.pass ? 0 : 1;
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  console.log(
    JSON.stringify({ fixture: dir, quant, error: e instanceof Error ? e.message : String(e), pass: false }),
  );
  process.exitCode = 2;
} finally {
  await rm(workDir, { recursive: true, force: true });
}
