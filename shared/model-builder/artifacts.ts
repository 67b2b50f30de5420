/**
 * Turns a HF checkpoint into model artifacts (docs/architecture.md, "Model artifacts and the
 * decoder graph"): `model.onnx`, its external data, and
 * `loracast-model.json` with the module map and the fingerprint. Weights stream from the checkpoint
 * into the data file one tensor at a time.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  APPEND_FILE,
  BASE_APPEND_FILE,
  BASE_FILE,
  DATA_FILE,
  type KvCacheDtype,
  LORA_SHRINK_EXPAND,
  type LoraForm,
  type LoraOp,
  MODEL_FILE,
  MODEL_MANIFEST,
  type ModelManifest,
  TRAINING_FILE,
} from "../model-format/index.ts";
import {
  type AdapterModule,
  buildModelSpec,
  ModelConfigError,
  PACKED_MODULES,
  type VerifiedAdapter,
} from "../model-spec/index.ts";
import { encodeModel, GraphBuilder } from "../onnx/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { toFloat32 } from "../safetensors/index.ts";
import type { Architecture } from "./architecture.ts";
import { gqaUnsupported } from "./attention-gqa.ts";
import { CheckpointError, openCheckpoint } from "./checkpoint.ts";
import { buildDecoderGraph, type DecoderAttention } from "./decoder-graph.ts";
import { buildTrainingGraph } from "./training-graph.ts";
import { type BaseQuant, WeightPlan } from "./weights.ts";

/**
 * What `buildArtifacts` builds: from which checkpoint directory, into which directory, how the base
 * weights are stored (`quant`), and optionally merged with an adapter or laid out for transformers.js.
 */
export interface BuildOptions {
  checkpointDir: string;
  outDir: string;
  quant: BaseQuant;
  /**
   * Fold this adapter into the base weights (W + scaling·B·A) before they are stored, as the
   * merge-and-ship tools do. A merged model has no LoRA inputs, so its module map is empty and
   * generators refuse adapters for it.
   */
  merge?: VerifiedAdapter;
  /**
   * `loracast` (default): the generator's artifacts. `transformers.js`: the same decoder without
   * LoRA inputs and with logits at every position, laid out as transformers.js loads a local model
   * (`onnx/model_<dtype>.onnx`, config and tokenizer files); no loracast-model.json.
   */
  format?: "loracast" | "transformers.js";
  /**
   * The decoder graphs' attention (`DecoderAttention`; the training graph always uses `ops`).
   * `gqa` is for the `loracast` format only (a RangeError otherwise), and an architecture it
   * cannot run returns a `ModelConfigError`. @default "ops"
   */
  attention?: DecoderAttention;
  /**
   * The decoder graphs' KV cache element type (`KvCacheDtype`): `float16` builds GroupQueryAttention
   * for ORT's CUDA kernel (`attention-gqa.ts`) and needs `attention: "gqa"` (a RangeError
   * otherwise); the manifest records it (`decoder.kvCacheDtype`). @default "float32"
   */
  kvCacheDtype?: KvCacheDtype;
  /**
   * How the generation graphs compute each LoRA pair's first product (`LoraForm`, `lora-forms.ts`):
   * `splitk-t` is the WebGPU build's, whose `Gemm`/`MatMul` kernels leave a long-K, few-output
   * product to one or two workgroups. The manifest records it (`decoder.loraForm`) and the runtime feeds
   * `lora_A` in its layout; the training graph keeps `gemm`. A form other than `gemm` needs LoRA
   * inputs (the `loracast` format, no `merge`; a RangeError otherwise). @default "gemm"
   */
  loraForm?: LoraForm;
  /**
   * How the generation graphs with LoRA inputs (`model.onnx`, `model.append.onnx`) compute each
   * LoRA branch (`LoraOp`): `shrink-expand` makes them need the ort-native addon
   * (`LORA_SHRINK_EXPAND`); the training graph keeps its Gemms, the base graphs have no LoRA. The
   * manifest records it (`decoder.loraOp`). `shrink-expand` needs LoRA inputs and `loraForm` `gemm`:
   * with `merge`, the transformers.js format or another form it is a RangeError. @default "gemm"
   */
  loraOp?: LoraOp;
}

/** transformers.js picks the ONNX file by dtype suffix. */
const TRANSFORMERS_JS_SUFFIX = { fp32: "", fp16: "_fp16", q8: "_quantized", q4: "_q4" } as const;

/** The transformers.js `dtype` under which a model of this storage format loads. */
export function transformersJsDtype(quant: BaseQuant): keyof typeof TRANSFORMERS_JS_SUFFIX {
  if (quant.kind !== "nbits" || quant.emulate) return quant.kind === "fp16" ? "fp16" : "fp32";
  return quant.bits === 8 ? "q8" : "q4";
}

function mergeInto(w: Float32Array, module: AdapterModule, inFeatures: number): Float32Array {
  const a = toFloat32(module.a.dtype, module.a.bytes);
  const b = toFloat32(module.b.dtype, module.b.bytes);
  const r = module.rank;
  for (let o = 0; o < b.length / r; o++) {
    for (let j = 0; j < r; j++) {
      const c = module.scaling * (b[o * r + j] ?? 0);
      const row = o * inFeatures;
      const aRow = j * inFeatures;
      for (let i = 0; i < inFeatures; i++) w[row + i] = (w[row + i] ?? 0) + c * (a[aRow + i] ?? 0);
    }
  }
  return w;
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "chat_template.jinja",
];

/**
 * Builds the model artifacts of a HF checkpoint (`npm run build-model`): by default `model.onnx`,
 * `model.append.onnx` and (unless merged) `train.onnx` and the two decoders without LoRA inputs
 * (`model.base.onnx`, `model.base.append.onnx`) with their external data and
 * `loracast-model.json`, plus the tokenizer files (see `BuildOptions.format` for transformers.js);
 * weights stream one tensor at a time. Returns the written manifest; an `err` is the checkpoint's
 * `CheckpointError` or its config's `ModelConfigError`.
 */
export async function buildArtifacts(
  options: BuildOptions,
): Promise<Result<ModelManifest, CheckpointError | ModelConfigError>> {
  const format = options.format ?? "loracast";
  const attention = options.attention ?? "ops";
  const kvCacheDtype = options.kvCacheDtype ?? "float32";
  const loraForm = options.loraForm ?? "gemm";
  if (loraForm !== "gemm" && (format !== "loracast" || options.merge !== undefined))
    throw new RangeError(
      `LoRA form ${loraForm} is for graphs with LoRA inputs (the loracast format, not merged)`,
    );
  if (attention === "gqa" && format !== "loracast")
    throw new RangeError("attention gqa is for the loracast format only (transformers.js feeds a mask)");
  if (kvCacheDtype !== "float32" && attention !== "gqa")
    throw new RangeError(`a ${kvCacheDtype} KV cache is built with attention gqa only`);
  const loraOp = options.loraOp ?? "gemm";
  if (loraOp !== "gemm" && (format !== "loracast" || options.merge !== undefined))
    throw new RangeError(
      `loraOp ${loraOp} needs LoRA inputs: not with ${options.merge !== undefined ? "merge" : `the ${format} format`}`,
    );
  if (loraOp === "shrink-expand" && loraForm !== "gemm")
    throw new RangeError(
      `loraOp shrink-expand takes lora_A as PEFT's [r, in]: not with loraForm ${loraForm}`,
    );
  const opened = await openCheckpoint(options.checkpointDir);
  if (!opened.ok) return opened;
  const ckpt = opened.value;
  const unsupported = attention === "gqa" ? gqaUnsupported(ckpt.arch) : null;
  if (unsupported !== null) {
    await ckpt.close();
    return err(new ModelConfigError("attention", `gqa: ${unsupported}`));
  }
  const merged = new Map((options.merge?.modules ?? []).map((m) => [`${m.module}.weight`, m]));
  const modelFile =
    format === "loracast"
      ? MODEL_FILE
      : `onnx/model${TRANSFORMERS_JS_SUFFIX[transformersJsDtype(options.quant)]}.onnx`;
  const dataFile = format === "loracast" ? DATA_FILE : `${basename(modelFile)}_data`;
  const modelPath = join(options.outDir, modelFile);
  const dataPath = join(dirname(modelPath), dataFile);
  try {
    const { arch } = ckpt;
    const lora = format === "loracast" && options.merge === undefined;
    const g = new GraphBuilder("loracast-decoder");
    const plan = new WeightPlan(g, options.quant, dataFile);
    // transformers.js gets the per-module layout: the plain export its peers are measured against.
    buildDecoderGraph(g, arch, plan, {
      lora,
      logitsPositions: format === "loracast",
      layout: format === "loracast" ? "fused" : "per-module",
      attention,
      kvCacheDtype,
      loraForm,
      loraOp,
    });
    // The same decoder returning only each step's new keys and values (the CPU's; decoder-graph.ts).
    const appending =
      format === "loracast"
        ? graphOverSameData("decoder-append", options.quant, dataFile, plan, (ga, pa) =>
            buildDecoderGraph(ga, arch, pa, {
              lora,
              kvOutput: "append",
              attention,
              kvCacheDtype,
              loraForm,
              loraOp,
            }),
          )
        : null;
    // The same two decoders without LoRA inputs, for requests with no adapter: a LoRA graph fed
    // rank-0 factors still dispatches its LoRA nodes every step (8 per layer in the fused layout).
    const base = lora
      ? {
          model: graphOverSameData("decoder-base", options.quant, dataFile, plan, (gb, pb) =>
            buildDecoderGraph(gb, arch, pb, { lora: false, attention, kvCacheDtype }),
          ),
          append: graphOverSameData("decoder-base-append", options.quant, dataFile, plan, (gb, pb) =>
            buildDecoderGraph(gb, arch, pb, { lora: false, kvOutput: "append", attention, kvCacheDtype }),
          ),
        }
      : null;
    const training = lora
      ? graphOverSameData("training", options.quant, dataFile, plan, (gt, pt) =>
          buildTrainingGraph(gt, arch, pt),
        )
      : null;

    for (const job of plan.jobs) {
      for (const source of job.sources) {
        if (!ckpt.has(source.name))
          return err(new CheckpointError(`checkpoint has no tensor ${source.name}`));
        const shape = ckpt.entry(source.name).shape;
        if (shape.join() !== source.dims.join()) {
          return err(
            new CheckpointError(
              `tensor ${source.name} has shape [${shape}], expected [${source.dims}] from config.json`,
            ),
          );
        }
      }
    }

    await mkdir(dirname(modelPath), { recursive: true });
    const model = encodeGraph(g);
    const hash = createHash("sha256").update(model);
    if (appending !== null) hash.update(appending);
    // The base graphs are left out of the digest, which stays what builds before them wrote for
    // the same checkpoint: adapters signed by trainers that stamped this digest as their base
    // (generator main.ts, `alsoAccept`) must keep verifying, and the base graphs add no weight
    // (they run the same data file, without the LoRA inputs).
    const tmpData = `${dataPath}.partial`;
    const out = await open(tmpData, "w");
    try {
      let at = 0;
      for (const job of plan.jobs) {
        if (job.offset > at) {
          const pad = new Uint8Array(job.offset - at);
          hash.update(pad);
          await out.write(pad);
          at = job.offset;
        }
        const ws: Float32Array[] = [];
        for (const source of job.sources) {
          const w = await ckpt.readFloat32(source.name);
          const m = merged.get(source.name);
          ws.push(m === undefined ? w : mergeInto(w, m, source.dims[1] ?? 0));
        }
        for (const part of job.produce(ws)) {
          hash.update(part);
          await out.write(part);
          at += part.byteLength;
        }
        if (at !== job.offset + job.length)
          throw new Error(
            `weight job ${job.sources[0]?.name} wrote ${at - job.offset} of ${job.length} bytes`,
          );
      }
    } finally {
      await out.close();
    }
    await rename(tmpData, dataPath);
    await writeFile(modelPath, model);
    if (appending !== null) await writeFile(join(options.outDir, APPEND_FILE), appending);
    if (training !== null) await writeFile(join(options.outDir, TRAINING_FILE), training);
    if (base !== null) {
      await writeFile(join(options.outDir, BASE_FILE), base.model);
      await writeFile(join(options.outDir, BASE_APPEND_FILE), base.append);
    }

    for (const file of format === "loracast" ? TOKENIZER_FILES : ["config.json", ...TOKENIZER_FILES]) {
      const text = await readFile(join(options.checkpointDir, file)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return null;
        throw e;
      });
      if (text !== null) await writeFile(join(options.outDir, file), text);
    }
    const manifest = modelManifest(arch, options.quant, `sha256:${hash.digest("hex")}`, {
      lora,
      attention,
      kvCacheDtype,
      loraForm,
      loraOp,
      files: {
        model: modelFile,
        data: dataFile,
        ...(appending === null ? {} : { append: APPEND_FILE }),
        ...(training === null ? {} : { training: TRAINING_FILE }),
        ...(base === null ? {} : { base: BASE_FILE, baseAppend: BASE_APPEND_FILE }),
      },
    });
    if (format === "loracast")
      await writeFile(join(options.outDir, MODEL_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    return ok(manifest);
  } catch (e) {
    // Best effort: a cleanup that fails too (the output is not a directory) must not hide `e`.
    await rm(`${dataPath}.partial`, { force: true }).catch(() => undefined);
    if (e instanceof CheckpointError) return err(e);
    throw e;
  } finally {
    await ckpt.close();
  }
}

/**
 * Another graph over the decoder's data file: its plan declares no bytes, only initializers into
 * the decoder's (`WeightPlan` `over`), whole weights or one projection of a fused one. A weight
 * the decoder did not store throws: a builder bug.
 */
function graphOverSameData(
  what: string,
  quant: BaseQuant,
  dataFile: string,
  decoder: WeightPlan,
  build: (g: GraphBuilder, plan: WeightPlan) => void,
): Uint8Array {
  const g = new GraphBuilder(`loracast-${what}`);
  build(g, new WeightPlan(g, quant, dataFile, decoder));
  return encodeGraph(g);
}

/** The graph as an ONNX model; it imports `LORA_SHRINK_EXPAND`'s domain only where a node uses it. */
const encodeGraph = (g: GraphBuilder): Uint8Array => {
  const graph = g.build();
  const { domain, version } = LORA_SHRINK_EXPAND;
  const fused = graph.nodes.some((n) => n.domain === domain);
  return encodeModel({
    graph,
    opsets: { "": 21, "com.microsoft": 1, ...(fused ? { [domain]: version } : {}) },
    producer: "loracast",
  });
};

function modelManifest(
  arch: Architecture,
  quant: BaseQuant,
  fingerprint: string,
  graph: {
    lora: boolean;
    attention: DecoderAttention;
    kvCacheDtype: KvCacheDtype;
    loraForm: LoraForm;
    loraOp: LoraOp;
    files: ModelManifest["files"];
  },
): ModelManifest {
  const spec = buildModelSpec(arch.dims);
  return {
    schema: "loracast-model/2",
    fingerprint,
    architecture: arch.dims.modelType,
    dims: arch.dims,
    quant:
      quant.kind !== "nbits"
        ? { kind: quant.kind }
        : {
            kind: quant.emulate ? "fp32-dequantized" : `int${quant.bits}`,
            bits: quant.bits,
            blockSize: quant.blockSize,
            accuracyLevel: quant.accuracyLevel ?? 0,
          },
    rope: { type: arch.rope.type, theta: arch.rope.theta },
    rmsNormEps: arch.rmsNormEps,
    maxPositions: arch.maxPositions,
    bosTokenId: arch.bosTokenId,
    eosTokenIds: arch.eosTokenIds,
    files: graph.files,
    decoder: {
      layout: "fused",
      packedModules: PACKED_MODULES.map((p) => ({ ...p, modules: [...p.modules] })),
      ...(graph.attention === "ops" ? {} : { attention: graph.attention }),
      ...(graph.kvCacheDtype === "float32" ? {} : { kvCacheDtype: graph.kvCacheDtype }),
      ...(graph.loraForm === "gemm" ? {} : { loraForm: graph.loraForm }),
      ...(graph.loraOp === "gemm" ? {} : { loraOp: graph.loraOp }),
    },
    modules: graph.lora
      ? [...spec.modules.values()].map((m) => ({
          name: m.name,
          inFeatures: m.inFeatures,
          outFeatures: m.outFeatures,
        }))
      : [],
  };
}
