import { z } from "zod";

/**
 * The onnxruntime-node execution providers loracast runs its sessions on: `cpu` (MLAS kernels),
 * `webgpu` (Dawn; keeps the KV cache on the device, see `gpu-transfer.ts`) and `cuda` (NVIDIA GPUs;
 * onnxruntime-node loads `libonnxruntime_providers_cuda.so` at session creation, which its install
 * script downloads only with `ONNXRUNTIME_NODE_INSTALL=cuda12`, and which needs CUDA 12 and cuDNN 9 on
 * the host). The one list that the session options, the services' `*_EXECUTION_PROVIDER` settings
 * and the benches' `--ep` accept.
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
    "; it needs onnxruntime-node's CUDA 12 provider libraries (installed with ONNXRUNTIME_NODE_INSTALL=cuda12," +
    " as the generator image built with --build-arg EXECUTION_PROVIDER=cuda does) and CUDA 12 with cuDNN 9 on the host",
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

/** ORT's messages for a provider it cannot append: its library is absent or fails to load. */
const PROVIDER_LOAD_FAILURE = /AppendExecutionProvider|Failed to load (shared )?library/;

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
