import { z } from "zod";

/**
 * The onnxruntime-node execution providers loracast runs its sessions on: `cpu` (MLAS kernels) and
 * `webgpu` (Dawn; keeps the KV cache on the device, see `gpu-transfer.ts`). The one list that the
 * session options, the services' `*_EXECUTION_PROVIDER` settings and the benches' `--ep` accept.
 */
const EXECUTION_PROVIDERS = ["cpu", "webgpu"] as const;
/** One of `EXECUTION_PROVIDERS`. */
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
/** `EXECUTION_PROVIDERS` as a zod enum, for environment and CLI parsing. */
export const executionProviderSchema = z.enum(EXECUTION_PROVIDERS);
