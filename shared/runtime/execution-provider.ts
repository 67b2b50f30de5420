import { z } from "zod";

/**
 * The onnxruntime-node execution providers loracast runs its sessions on: `cpu` (MLAS kernels),
 * `webgpu` (Dawn; keeps the KV cache on the device, see `gpu-transfer.ts`) and `cuda` (NVIDIA GPUs;
 * onnxruntime-node loads `libonnxruntime_providers_cuda.so` from beside its `libonnxruntime.so.1` at
 * session creation: ORT 1.29.0's CUDA 13 build, which loads only into onnxruntime-node 1.29.0's core
 * library (the CUDA image installs both; the project installs 1.30), from the npm package
 * `com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9`, as `infra/images/execution-provider.sh`
 * installs it; the KV cache stays on the host, see `device-copies.ts`). The one list that the
 * session options, the services' `*_EXECUTION_PROVIDER` settings and the benches' `--ep` accept.
 */
const EXECUTION_PROVIDERS = ["cpu", "webgpu", "cuda"] as const;
/** One of `EXECUTION_PROVIDERS`. */
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
/** `EXECUTION_PROVIDERS` as a zod enum, for environment and CLI parsing. */
export const executionProviderSchema = z.enum(EXECUTION_PROVIDERS);

/** What each provider needs, said after ORT's own reason when it cannot be used. */
const NEEDS: Record<ExecutionProvider, string> = {
  cpu: "",
  webgpu: "; it needs a Vulkan driver and its loader (libvulkan1) on the host",
  cuda:
    "; it needs ORT 1.29.0's CUDA 13 provider (libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so" +
    " of the npm package com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9) beside onnxruntime-node 1.29.0's libonnxruntime.so.1" +
    " (a provider loads only into its exact version; the project installs 1.30)," +
    " as the images built with --build-arg EXECUTION_PROVIDER=cuda have, and CUDA 13 (libcudart.so.13, libcublas.so.13," +
    " libcublasLt.so.13, libcurand.so.10) with an NVIDIA driver for CUDA 13 (580 or newer) on the host",
};

/**
 * A session could not be created on the execution provider it asked for, because the provider's
 * library is missing or does not load (ORT's `OrtSessionOptionsAppendExecutionProvider_<EP>: Failed to
 * load shared library`). `message` names the provider, ORT's reason and what the provider needs.
 */
export class ExecutionProviderError extends Error {
  override readonly name = "ExecutionProviderError";
  readonly code = "provider_unavailable";
  constructor(
    readonly provider: ExecutionProvider,
    reason: string,
  ) {
    super(`execution provider ${provider} cannot be used: ${reason}${NEEDS[provider]}`);
  }
}

/**
 * ORT's messages for a provider it cannot append: its library is absent or fails to load, or
 * (WebGPU) the machine has no adapter it can use (no GPU, no Vulkan).
 */
const PROVIDER_LOAD_FAILURE =
  /AppendExecutionProvider|Failed to load (shared )?library|Failed to get a WebGPU adapter/;

/**
 * The `ExecutionProviderError` that an error thrown by `InferenceSession.create` under `providers`
 * stands for, or null when it is something else (a bad model file: the caller rethrows it). The
 * error names the first provider other than `cpu`, the one that can fail to load.
 */
export function providerFailure(
  error: unknown,
  providers: readonly ExecutionProvider[],
): ExecutionProviderError | null {
  const message = error instanceof Error ? error.message : String(error);
  if (!PROVIDER_LOAD_FAILURE.test(message)) return null;
  const provider = providers.find((p) => p !== "cpu") ?? "cpu";
  // ORT's message is one line here; bound it anyway, it ends up in a log line.
  return new ExecutionProviderError(provider, message.split("\n")[0]?.slice(0, 500) ?? "");
}
