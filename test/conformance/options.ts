/**
 * What a conformance run is asked for (`ConformanceOptions`: the fixture, the build, where it
 * runs) and the LoRA form it builds the decoder with (`loraFormOf`).
 */
import { type DecoderAttention, defaultLoraForm } from "@loracast/shared/model-builder";
import type { KvCacheDtype, LoraForm, LoraOp } from "@loracast/shared/model-format";
import type { ExecutionProvider, OrtBackend } from "@loracast/shared/runtime";

/** The base's quantization: `fp32` is held to PyTorch's logits; int8 and int4 to the dequantized fp32 build. */
export type QuantChoice = "fp32" | "int8" | "int4";

/** One conformance run: the fixture, how its model is built, and where its sessions run. */
export interface ConformanceOptions {
  fixtureDir: string;
  quant: QuantChoice;
  blockSize: 32 | 128;
  /**
   * The decoder graphs' attention. With `gqa` the report adds `vsOpsAttention`: the GQA graph's
   * logits against the `ops` graph's, same weights (what the GroupQueryAttention kernel changes).
   * The training graph always uses `ops`. @default "ops"
   */
  attention?: DecoderAttention;
  /**
   * The GQA decoder's KV cache element type (`build-model --kv-cache-dtype`): `float16` is the
   * CUDA build, whose attention computes in float16 (`tolerances.ts` says what that allows). Needs
   * `attention: "gqa"`; the `ops` decoder `vsOpsAttention` compares with stays float32. @default "float32"
   */
  kvCacheDtype?: KvCacheDtype;
  /**
   * The decoder graphs' LoRA op (`build-model --lora-op`): `shrink-expand` runs on the ort-native
   * addon only (`backend` `auto` or `ort-native`); the training graph keeps its Gemms. @default "gemm"
   */
  loraOp?: LoraOp;
  /** Scratch directory for built artifacts. */
  workDir: string;
  /** Where the decoder and training sessions run (default `cpu`); the reference is PyTorch's CPU. */
  ep?: ExecutionProvider;
  /**
   * On `cuda`: whether MatMul/Gemm may use TF32 (ORT's default). onnxruntime-node 1.29 passes only
   * `deviceId` to the CUDA EP, so ORT's `use_tf32` option is unreachable; off sets
   * `NVIDIA_TF32_OVERRIDE=0` in this process, which cuBLAS and cuDNN honour over what ORT asks.
   * The decoder gets it as `cudaTf32` too, which the ort-native backend passes to the CUDA EP as
   * `use_tf32`. Decides the tolerances (`tolerances.ts`). Ignored on other EPs.
   */
  tf32?: boolean;
  /** The decoder's ORT binding (`DecoderSessionOptions.backend`); the training graph is the stock one's. */
  backend?: OrtBackend;
  /**
   * How the decoder graphs compute each LoRA pair's first product (`build-model --lora-form`); the
   * training graph keeps `gemm`. @default `defaultLoraForm(ep)`: the build the EP runs
   */
  loraForm?: LoraForm;
}

/**
 * The LoRA form the decoder is built with: the one asked for, or the EP's (`defaultLoraForm`); `gemm`
 * with `loraOp: "shrink-expand"`, whose fused node computes the whole branch.
 */
export const loraFormOf = (opts: ConformanceOptions): LoraForm =>
  opts.loraOp === "shrink-expand" ? "gemm" : (opts.loraForm ?? defaultLoraForm(opts.ep ?? "cpu"));
