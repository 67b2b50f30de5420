/**
 * `loracast-model.json`: what a generator or trainer needs to know about built artifacts, and the
 * names of the files beside it. The model builder writes it; the runtime and training read it.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { modelTypeSchema } from "../architectures/index.ts";
import { buildModelSpec, type ModelSpec, PACKED_MODULES } from "../model-spec/index.ts";
import { err, ok, type Result } from "../result/index.ts";

/** The manifest's file name in an artifacts folder. */
export const MODEL_MANIFEST = "loracast-model.json";
/** The decoder graph that returns the whole KV cache each step (`present.*`). */
export const MODEL_FILE = "model.onnx";
/** Every graph's external weights (ONNX external data), 64-byte aligned. */
export const DATA_FILE = "model.onnx.data";
/** The training graph: log-probabilities and LoRA gradients (`TRAIN_IO`). */
export const TRAINING_FILE = "train.onnx";
/** The decoder graph that returns only each step's new keys and values (`appended.*`). */
export const APPEND_FILE = "model.append.onnx";
/** `MODEL_FILE` without LoRA inputs: what a base-only request runs (no LoRA node dispatched). */
export const BASE_FILE = "model.base.onnx";
/** `APPEND_FILE` without LoRA inputs. */
export const BASE_APPEND_FILE = "model.base.append.onnx";

const positive = z.number().int().positive();

/**
 * The element type of the decoder's KV cache (`past_key_values.*`, `present.*`, `appended.*`): ORT
 * GenAI's and Olive's "KV cache dtype". `float16` exists for GroupQueryAttention graphs, whose CUDA
 * kernel takes float16/bfloat16 only (`attention-gqa.ts`); the rest of the graph stays float32.
 */
export const kvCacheDtypeSchema = z.enum(["float32", "float16"]);
/** `float32` or `float16` (`kvCacheDtypeSchema`). */
export type KvCacheDtype = z.infer<typeof kvCacheDtypeSchema>;

/**
 * How the generation graphs compute each LoRA branch `y + (x · Aᵀ) · Bᵀ`: `gemm`, ONNX ops (two
 * `Gemm`s, shrink to rank r and expand with the base output `y` as C, or the first product in
 * another `LoraForm`), which any ORT runs; `shrink-expand`, one `LORA_SHRINK_EXPAND` node (vLLM's name for the pair: `lora_shrink`/`lora_expand`), which only
 * sessions of loracast's ort-native addon run, where that domain is registered. The training graph
 * always has the Gemms: it needs their gradients and runs on onnxruntime-node.
 */
export const loraOpSchema = z.enum(["gemm", "shrink-expand"]);
/** `gemm` or `shrink-expand` (`loraOpSchema`). */
export type LoraOp = z.infer<typeof loraOpSchema>;

/**
 * The fused LoRA op of `loraOp: "shrink-expand"` graphs: domain `ai.loracast`, version 1, inputs
 * float32 `x [M, K]`, `A [R, K]`, `B [N, R]`, `y [M, N]` and output `z = y + (x · Aᵀ) · Bᵀ`
 * `[M, N]` (R may be 0: z = y). The ort-native addon (`shared/ort-native`) implements it on cpu and
 * cuda and registers the domain in every session it creates (`lora-op.cc`'s `DOMAIN` and `NAME` are
 * these, for the C++ side); onnxruntime-node does not know it. The one TypeScript definition: the
 * builder, the native decoder and the addon's test graphs all take it from here.
 */
export const LORA_SHRINK_EXPAND = { domain: "ai.loracast", opType: "LoraShrinkExpand", version: 1 } as const;

/**
 * The fused op of a 4-bit LoRA-targeted projection in `loraOp: "shrink-expand"` graphs: domain
 * `ai.loracast`, version 1, inputs as `com.microsoft.MatMulNBits` takes them (float32 `A [M, K]`,
 * uint8 `B [N, k_blocks, block_size / 2]`, float32 `scales`, uint8 `zero_points`) then float32
 * `lora_A [R, K]` and `lora_B [N, R]`, attributes `K`, `N`, `bits` (4), `block_size`; output
 * `Y = A · dequantize(B)ᵀ + (A · lora_Aᵀ) · lora_Bᵀ` `[M, N]` (R may be 0). The ort-native addon
 * implements it on cpu and cuda (`nbits-op.h`), in the same domain as `LORA_SHRINK_EXPAND`.
 */
export const MATMUL_NBITS_LORA = { domain: "ai.loracast", opType: "MatMulNBitsLora", version: 1 } as const;

/**
 * How the generation graphs compute a LoRA pair's first product, `x · Aᵀ`
 * (`model-builder/lora-forms.ts` says what each form is and why): `gemm`, one Gemm (the form every
 * build before it had); `matmul`, one MatMul over A transposed; `mulsum`, Mul and ReduceSum;
 * `splitk`, a batched MatMul over chunks of the input features and a ReduceSum, batched per token
 * and chunk; `splitk-t`, the same batched per chunk, the tokens as rows (x transposed).
 */
export const loraFormSchema = z.enum(["gemm", "matmul", "mulsum", "splitk", "splitk-t"]);
/** One of `loraFormSchema`'s forms. */
export type LoraForm = z.infer<typeof loraFormSchema>;

/**
 * How a `LoraForm` takes the packed `lora_A` input: `rows`, PEFT's `[r, in]`; `columns`,
 * transposed, `[in, r]` (`matmul`, `splitk`, `splitk-t`; the runtime transposes each adapter once,
 * `packLoraFeeds`). `lora_B` is PEFT's `[out, r]` in every form.
 */
export type LoraALayout = "rows" | "columns";

/** The `LoraALayout` that `form` takes. */
export function loraALayout(form: LoraForm): LoraALayout {
  return form === "matmul" || form === "splitk" || form === "splitk-t" ? "columns" : "rows";
}

/**
 * The manifest's schema version. `loracast-model/1` was written by builders before the fused
 * decoder graph (a LoRA pair per HF module); its graphs take other inputs, so it is refused with a
 * "rebuild the model" error.
 */
const SCHEMA = "loracast-model/2";

/** The schema of `loracast-model.json` (`schema: "loracast-model/2"`). */
export const modelManifestSchema = z.object({
  schema: z.literal(SCHEMA),
  /**
   * The artifacts' digest: `sha256:` over the decoder graph, the append graph (where built) and the
   * external data, in that order. It names these exact files (OpenAI `system_fingerprint`), not the
   * base an adapter fits: that is the module map's `spec-sha256:` fingerprint (`ModelSpec.fingerprint`).
   */
  fingerprint: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  architecture: modelTypeSchema,
  dims: z.object({
    modelType: modelTypeSchema,
    hiddenSize: positive,
    intermediateSize: positive,
    numLayers: positive,
    numHeads: positive,
    numKvHeads: positive,
    headDim: positive,
    vocabSize: positive,
    tieWordEmbeddings: z.boolean(),
  }),
  quant: z.object({
    kind: z.string(),
    bits: z.number().int().optional(),
    blockSize: z.number().int().optional(),
    accuracyLevel: z.number().int().optional(),
  }),
  rope: z.object({ type: z.string(), theta: z.number() }),
  rmsNormEps: z.number(),
  maxPositions: positive,
  bosTokenId: z.number().int().nullable(),
  eosTokenIds: z.array(z.number().int()),
  /**
   * `model`: the decoder that returns the whole KV cache each step (`present.*`). `append`: the same
   * decoder returning only each step's new keys and values, for a cache the runtime keeps.
   * `training`: the graph with log-probabilities and LoRA gradients. `base` and `baseAppend`:
   * `model` and `append` without LoRA inputs, for requests with no adapter (absent in manifests
   * written before them: a session then runs those requests on `model` with rank-0 factors). All
   * read the same data file.
   */
  files: z.object({
    model: z.string(),
    data: z.string(),
    append: z.string().optional(),
    training: z.string().optional(),
    base: z.string().optional(),
    baseAppend: z.string().optional(),
  }),
  modules: z.array(z.object({ name: z.string(), inFeatures: positive, outFeatures: positive })),
  /**
   * The generation graphs' layout (`model`, `append`): `fused`, one projection and one LoRA pair
   * per packed module, whose LoRA inputs are named by `peftKey` of the packed module
   * (`model.layers.3.self_attn.qkv_proj`) and take its members' factors packed (`packLoraFeeds`).
   * The training graph keeps a LoRA pair per HF module.
   */
  decoder: z
    .object({
      layout: z.literal("fused"),
      packedModules: z
        .array(z.object({ name: z.string(), modules: z.array(z.string()).min(1) }))
        .refine((g) => JSON.stringify(g) === JSON.stringify(PACKED_MODULES), {
          message: "packed modules other than this runtime's; rebuild the model",
        }),
      /**
       * The generation graphs' attention: `ops` (absent in older manifests), plain ONNX ops over an
       * additive mask and left-padded rows; `gqa`, one ORT GroupQueryAttention node per layer over
       * right-padded rows, fed `seqlens_k` and `total_sequence_length` (`IO`). The training graph
       * always uses `ops`.
       */
      attention: z.enum(["ops", "gqa"]).optional(),
      /**
       * The KV cache's element type (`KvCacheDtype`); absent means `float32`, what every manifest
       * before it had. The graphs' cache inputs and outputs have this type and the runtime feeds
       * caches of it. Added without a schema bump, as `attention` was: a runtime that predates it
       * would feed float32 caches, which ORT refuses by name and type ("Unexpected input data type")
       * on the first step, so no reader can misread a float16 cache silently.
       */
      kvCacheDtype: kvCacheDtypeSchema.optional(),
      /**
       * How the generation graphs compute LoRA (`LoraOp`); absent means `gemm`, what every manifest
       * before it had. Added without a schema bump, as `attention` and `kvCacheDtype` were: a
       * runtime that predates it would open a `shrink-expand` graph on onnxruntime-node, which
       * refuses it at load by name (no kernel for op domain `ai.loracast`), so no reader can run
       * such a graph wrongly.
       */
      loraOp: loraOpSchema.optional(),
      /**
       * The generation graphs' `LoraForm`; absent means `gemm`, what every manifest before it had.
       * Added without a schema bump, as `attention` was: the `rows` forms take the factors as
       * before, and a runtime that predates it would feed a `columns` form's `lora_A` as `[r, in]`,
       * which ORT refuses on the first step (the input's fixed dimension is `in`), never silently.
       */
      loraForm: loraFormSchema.optional(),
    })
    // Only the GroupQueryAttention graphs are built with a float16 cache (`buildArtifacts`).
    .refine((d) => d.kvCacheDtype !== "float16" || d.attention === "gqa", {
      message: "a float16 KV cache needs attention gqa",
      path: ["kvCacheDtype"],
    })
    // A fused LoRA node has no first product of its own to form (`buildArtifacts`).
    .refine((d) => d.loraOp !== "shrink-expand" || (d.loraForm ?? "gemm") === "gemm", {
      message: "loraOp shrink-expand is built with loraForm gemm only",
      path: ["loraOp"],
    }),
});

/** A parsed `loracast-model.json`. */
export type ModelManifest = z.infer<typeof modelManifestSchema>;

/** Artifacts that cannot be used: a manifest that is missing, not JSON, off the schema or inconsistent. */
export class ModelArtifactsError extends Error {
  override readonly name = "ModelArtifactsError";
}

/**
 * Reads and checks `<dir>/loracast-model.json`. Its module map is the one its dims imply, or empty
 * for a graph without LoRA inputs (a merged base), which then accepts no adapter. The spec's
 * fingerprint is the module map's (`spec-sha256:`, from the dims), the one adapter manifests carry;
 * the artifacts' digest stays `manifest.fingerprint`. Returns a `ModelArtifactsError` for a manifest
 * that cannot be read (a relative `dir` named as resolved too: `npm -w` runs a service in its own
 * folder), fails the schema, or lists a module map other than its dims'.
 */
export async function readModelManifest(
  dir: string,
): Promise<Result<{ manifest: ModelManifest; spec: ModelSpec }, ModelArtifactsError>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(join(dir, MODEL_MANIFEST), "utf8"));
  } catch (e) {
    const path = join(dir, MODEL_MANIFEST);
    const where = isAbsolute(path) ? path : `${path} (relative to the working directory: ${resolve(path)})`;
    return err(new ModelArtifactsError(`cannot read ${where}: ${(e as Error).message}`));
  }
  const schema = (json as { schema?: unknown } | null)?.schema;
  if (schema !== SCHEMA) {
    return err(
      new ModelArtifactsError(
        `${join(dir, MODEL_MANIFEST)} is ${JSON.stringify(schema)}, built by ${schema === "loracast-model/1" ? "an older model builder (a LoRA input pair per module, no fused projections)" : "another model builder"}; this runtime reads ${SCHEMA}: rebuild the model (npm run build-model)`,
      ),
    );
  }
  const parsed = modelManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return err(
      new ModelArtifactsError(
        `${MODEL_MANIFEST}: ${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
      ),
    );
  }
  const manifest = parsed.data;
  const spec = buildModelSpec(manifest.dims);
  const expected = [...spec.modules.values()].map((m) => `${m.name}:${m.inFeatures}:${m.outFeatures}`).join();
  const got = manifest.modules.map((m) => `${m.name}:${m.inFeatures}:${m.outFeatures}`).join();
  if (got !== "" && expected !== got)
    return err(new ModelArtifactsError(`${MODEL_MANIFEST}: module map does not match its dims`));
  const modules = got === "" ? new Map() : spec.modules;
  return ok({ manifest, spec: { ...spec, modules } });
}
