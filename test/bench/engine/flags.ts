/**
 * The engine bench's command line (`npm run bench:engine -- --help` prints it): every flag checked
 * once, a bad value a usage error (exit 2), never a silent default.
 */
import { join } from "node:path";
import { ROOT } from "@loracast/dev-support/fixtures";
import { loraFormSchema } from "@loracast/shared/model-format";
import { loadOrtNative } from "@loracast/shared/ort-native";
import { parseCommandLine, usageError } from "@loracast/shared/platform";
import { baseGraphSchema, executionProviderSchema } from "@loracast/shared/runtime";
import { z } from "zod";

const cli = {
  usage: "npm run bench:engine -- [flags]",
  about:
    "Engine benchmark on a model with Qwen2.5-0.5B's dimensions (seeded random weights): prefill and decode tok/s for the int4 base, base + LoRA and merged fp16, the transformers.js peer, and adapter swap time and RSS. Reads no environment variables but the ort-native addon loader's LORACAST_ORT_NATIVE_ADDON (the addon's path; default shared/ort-native/build/ort-native.node).",
  flags: {
    "accuracy-level": { type: "string", default: "4", help: "MatMulNBits accuracy level: 0 or 4" },
    "block-size": { type: "string", default: "32", help: "int4 block: 32 or 128" },
    ep: {
      type: "string",
      default: "cpu",
      help: "execution provider: cpu, webgpu or cuda",
    },
    compare: {
      type: "string",
      default: "true",
      help: "also build and measure merged fp16 and the transformers.js peer: true or false",
    },
    rounds: { type: "string", default: "5", help: "timed rounds per measurement" },
    swaps: { type: "string", default: "1000", help: "adapter swaps in the swap measurement" },
    throughput: { type: "string", default: "true", help: "run the throughput measurements: true or false" },
    attention: {
      type: "string",
      default: "ops",
      help: "the loracast graphs' attention: ops, gqa (GroupQueryAttention), or both (GQA rows beside the ops rows, interleaved)",
    },
    "kv-cache-dtype": {
      type: "string",
      default: "auto",
      help: "the GQA graphs' KV cache: float32, float16, or auto (float16 on cuda, whose GroupQueryAttention takes no float32; float32 elsewhere)",
    },
    backend: {
      type: "string",
      default: "auto",
      help: "the loracast decoders' ORT binding: auto (ort-native on cuda where it loads), ort-native, onnxruntime-node, or both (stock rows beside the ort-native ones)",
    },
    tf32: {
      type: "string",
      default: "default",
      help: "cuda only: TF32 for float32 GEMMs, on, off, or default (the decoder's own: off on ort-native, ORT's on for the stock binding); the ort-native decoders pass it as use_tf32, the stock binding needs NVIDIA_TF32_OVERRIDE=0 for off",
    },
    "base-graph": {
      type: "string",
      default: "auto",
      help: "the base rows' decoder graph: auto (without LoRA inputs on cuda and webgpu, the LoRA graph with rank-0 factors on cpu), on, off, or both (rank-0 rows beside the base graph's)",
    },
    "lora-form": {
      type: "string",
      default: "auto",
      help: "how the loracast graphs compute each LoRA pair's x·Aᵀ: auto (splitk-t on webgpu, gemm elsewhere), gemm, matmul, mulsum, splitk or splitk-t; a comma list adds LoRA rows of the later forms beside the first's",
    },
    "lora-op": {
      type: "string",
      default: "gemm",
      help: "the LoRA graphs' LoRA branches: gemm (two Gemms), shrink-expand (one LoraShrinkExpand node: the ort-native addon only), or both (shrink-expand rows beside the gemm ones)",
    },
    profile: {
      type: "string",
      default: "0",
      help: "profile this many decode steps (batch 1, LoRA) with ORT's profiler and print where the time goes; 0: off",
    },
    work: {
      type: "string",
      default: join(ROOT, ".bench", "engine"),
      help: "where the random checkpoint and artifacts are kept (reused)",
    },
  },
} as const;
const boolFlag = z.enum(["true", "false"]).transform((v) => v === "true");
const count = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
// Every flag checked once, here: a bad value is a usage error (exit 2), never a silent default.
const flagsSchema = z
  .object({
    "accuracy-level": z.enum(["0", "4"]).transform(Number),
    "block-size": z.enum(["32", "128"]).transform(Number),
    ep: executionProviderSchema,
    compare: boolFlag,
    rounds: count(1, 100),
    swaps: count(0, 100_000),
    throughput: boolFlag,
    attention: z.enum(["ops", "gqa", "both"]),
    "kv-cache-dtype": z.enum(["auto", "float32", "float16"]),
    backend: z.enum(["auto", "ort-native", "onnxruntime-node", "both"]),
    tf32: z.enum(["on", "off", "default"]),
    // One enum (not a union) so that a bad value is refused naming the four.
    "base-graph": z.enum([...baseGraphSchema.options, "both"]),
    "lora-op": z.enum(["gemm", "shrink-expand", "both"]),
    "lora-form": z
      .string()
      .transform((v) => v.split(","))
      .pipe(
        z
          .array(z.enum(["auto", ...loraFormSchema.options]))
          .min(1)
          .max(4)
          .refine((l) => new Set(l).size === l.length, "a form listed twice"),
      ),
    profile: count(0, 1000),
    work: z.string().min(1),
  })
  .check((ctx) => {
    const v = ctx.value;
    if (v.tf32 !== "default" && v.ep !== "cuda")
      ctx.issues.push({
        code: "custom",
        input: v.tf32,
        path: ["tf32"],
        message: "applies to --ep=cuda only",
      });
    if (v["kv-cache-dtype"] === "float16" && v.attention === "ops")
      ctx.issues.push({
        code: "custom",
        input: v["kv-cache-dtype"],
        path: ["kv-cache-dtype"],
        message: "a float16 KV cache needs --attention=gqa or both (the ops graphs keep float32)",
      });
    if ((v.backend === "ort-native" || v.backend === "both") && v.ep === "webgpu")
      ctx.issues.push({
        code: "custom",
        input: v.backend,
        path: ["backend"],
        message: "the addon runs on cpu and cuda only",
      });
    // `both` also runs the main build on the stock binding.
    const stockMain =
      v.backend === "onnxruntime-node" || (v.backend === "both" && v["lora-op"] === "shrink-expand");
    if (v["lora-op"] !== "gemm" && (stockMain || v.ep === "webgpu"))
      ctx.issues.push({
        code: "custom",
        input: v["lora-op"],
        path: ["lora-op"],
        message:
          "shrink-expand graphs run on the ort-native addon only: --ep cpu or cuda with --backend auto or ort-native, or --backend=both with --lora-op=both (its stock rows are the gemm build's)",
      });
    if (v["lora-op"] === "shrink-expand" && v.profile > 0)
      ctx.issues.push({
        code: "custom",
        input: v.profile,
        path: ["profile"],
        message: "ORT's profiler runs on the stock binding, which cannot run shrink-expand graphs",
      });
    // A fused LoRA node computes the whole branch: no first product to form.
    const form = v["lora-form"][0] ?? "auto";
    if (v["lora-op"] === "shrink-expand" && form !== "auto" && form !== "gemm")
      ctx.issues.push({
        code: "custom",
        input: v["lora-form"],
        path: ["lora-form"],
        message: "--lora-op=shrink-expand builds the main rows with the gemm form (or auto) only",
      });
  });
/** Exits 2 with `message` and the bench's usage: a flag value refused after parsing. */
export function flagsUsageError(message: string): never {
  return usageError(cli, message);
}

/** The bench's parsed flags. */
type Flags = z.infer<typeof flagsSchema>;

/**
 * Why the ort-native addon these flags need does not load (`loadOrtNative`'s reason and message, and
 * the fix), or null where it loads or the flags do not need it: `--backend ort-native` or `both`, or a
 * shrink-expand build (`--lora-op shrink-expand` or `both`). Checked before any build: without it
 * the bench built every artifact, then died loading.
 */
function addonUnavailable(v: Pick<Flags, "backend" | "lora-op">): string | null {
  const needs =
    v["lora-op"] !== "gemm"
      ? `--lora-op ${v["lora-op"]}`
      : v.backend === "ort-native" || v.backend === "both"
        ? `--backend ${v.backend}`
        : null;
  if (needs === null) return null;
  const loaded = loadOrtNative();
  if (loaded.ok) return null;
  return `${needs} needs the ort-native addon, which does not load (${loaded.error.reason}: ${loaded.error.message}): build it with npm run build:ort-native (LORACAST_ORT_NATIVE_ADDON, where set, must name the built file), or run --lora-op gemm --backend auto`;
}

/**
 * The bench's flags, parsed (`--help` prints them and exits); a bad value is a usage error, exit 2,
 * naming the flag and, in a comma list, the bad item. Where the flags need the ort-native addon and
 * it does not load (`addonUnavailable`), exits 2 with that one line, before anything is built.
 */
export function parseFlags(): Flags {
  const { values: raw } = parseCommandLine(cli);
  const parsed = flagsSchema.safeParse(raw);
  if (!parsed.success)
    usageError(
      cli,
      parsed.error.issues
        .map((i) => {
          const [flag = "", index] = i.path;
          // An item of a comma list (--lora-form): name it, not just the flag.
          const item =
            typeof index === "number" ? `${String(raw[flag as keyof typeof raw]).split(",")[index]}: ` : "";
          return `--${String(flag)}: ${item}${i.message}`;
        })
        .join("; "),
    );
  const addon = addonUnavailable(parsed.data);
  if (addon !== null) {
    process.stderr.write(`error: ${addon}\n`);
    process.exit(2);
  }
  return parsed.data;
}
