/**
 * The options every loracast ORT session is created with (decoders, the training graph, the
 * benches' probes), and `createSession`, which creates one on onnxruntime-node.
 */
import * as ort from "onnxruntime-node";
import type { BaseGraphMode } from "./base-graph.ts";
import { type ExecutionProvider, providerFailure } from "./execution-provider.ts";
import type { OrtBackend } from "./native-decoder.ts";
import { disableOrtTelemetry } from "./ort-telemetry.ts";

/**
 * How an ORT session runs: execution providers in order of preference (ORT's names; `cpu` by
 * default), intra-op threads (ORT's default when absent) and the CUDA device.
 *
 * On `cuda`, onnxruntime-node 1.29's binding passes only `deviceId` to the CUDA EP
 * (`js/node/src/session_options_helper.cc`): ORT's other CUDA options (`use_tf32`, the arena's
 * `gpu_mem_limit` and `arena_extend_strategy`, `enable_cuda_graph`) keep their defaults. TF32 can
 * still be turned off for the process with `NVIDIA_TF32_OVERRIDE=0`, which cuBLAS honours; a
 * decoder on the ort-native addon sets `use_tf32` itself (`DecoderSessionOptions.cudaTf32`).
 */
export interface OrtSessionOptions {
  /** Tried in order; the first decides where the KV cache lives. Default `["cpu"]`. */
  executionProviders?: ExecutionProvider[];
  intraOpThreads?: number;
  /** The CUDA device (ordinal among those visible, `CUDA_VISIBLE_DEVICES`) for `cuda`; default 0. */
  cudaDeviceId?: number;
  /**
   * Diagnostics: ORT's profiler on, writing a Chrome-trace JSON whose name starts with this path
   * (ORT appends `_<date>.json`) once `endProfiling` is called. Every node's kernel time, op type
   * and execution provider are in it. Off by default: it slows every run.
   */
  profileFilePrefix?: string;
}

/** A decoder's session options: `OrtSessionOptions` and the binding that runs it. */
export interface DecoderSessionOptions extends OrtSessionOptions {
  /** Which binding runs the decoder (`OrtBackend`); default `auto`: ort-native on cuda where it loads. */
  backend?: OrtBackend;
  /**
   * `cuda` only: whether float32 MatMul/Gemm may use TF32 tensor cores (ORT's `use_tf32`). The
   * ort-native backend passes it to the CUDA EP, off by default (PyTorch's default for float32
   * matmuls, and the one the CPU conformance tolerances hold under); the stock binding cannot, so
   * there it is ORT's default (on), and `false` needs `NVIDIA_TF32_OVERRIDE=0` in the environment
   * (else `load` fails with `OrtBackendError`).
   * Given on another EP, `load` throws a RangeError.
   */
  cudaTf32?: boolean;
  /**
   * Whether base-only requests (`baseFeeds`) run on the decoder graph without LoRA inputs
   * (`BaseGraphMode`: `auto`, `on`, `off`); a second ORT session over the same weights, on the same
   * binding and EP with these options. Default `auto`: on for cuda and webgpu.
   */
  baseGraph?: BaseGraphMode;
}

/**
 * An ORT session over the model at `path` (or its bytes) with the options every loracast graph
 * runs under, less what `overrides` changes.
 * Throws `ExecutionProviderError` when a requested provider's library is missing or does not load,
 * and ORT's own error for anything else (a missing or corrupt graph).
 */
export async function createSession(
  path: string | Uint8Array,
  options: OrtSessionOptions,
  overrides: Pick<
    ort.InferenceSession.SessionOptions,
    | "graphOptimizationLevel"
    | "enableMemPattern"
    | "preferredOutputLocation"
    | "optimizedModelFilePath"
    | "extra"
    | "logSeverityLevel"
  > = {},
): Promise<ort.InferenceSession> {
  disableOrtTelemetry();
  const executionProviders = options.executionProviders ?? ["cpu"];
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: executionProviders.map((name) =>
      name === "cuda" ? { name, deviceId: options.cudaDeviceId ?? 0 } : name,
    ),
    ...(options.intraOpThreads !== undefined ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(options.profileFilePrefix !== undefined
      ? { enableProfiling: true, profileFilePrefix: options.profileFilePrefix }
      : {}),
    graphOptimizationLevel: "all",
    ...overrides,
  };
  try {
    return await (typeof path === "string"
      ? ort.InferenceSession.create(path, sessionOptions)
      : ort.InferenceSession.create(path, sessionOptions));
  } catch (e) {
    throw providerFailure(e, executionProviders) ?? e;
  }
}
