// ai.loracast.LoraShrinkExpand (since version 1), the fused LoRA op every session of the addon
// knows: z [M, N] = y + (x · Aᵀ) · Bᵀ over float32 x [M, K], A [R, K] (lora_A, packed modules
// stacked), B [N, R] (lora_B, scaled; block-diagonal for packed modules) and y [M, N] (the base
// projection): the two Gemms `u = Gemm(x, A, transB=1)`, `z = Gemm(u, B, C=y, transB=1)` of
// shared/model-builder/decoder-graph.ts in one node. R = 0 gives z = y, M = 0 an empty z.
// Kernels: CPUExecutionProvider (plain loops, the reference) and CUDAExecutionProvider
// (lora-kernels.cu's shrink and expand, or lora_fused; loaded as PTX through the CUDA driver API on the first
// compute; see lora-op.cc). Optional string attribute `kernel` (CUDA): "auto" (absent: shrink then
// expand; lora-op.cc's FUSED_MAX_ROWS says why lora_fused runs for no rows), "split" (the two
// launches) or "fused" (always lora_fused, for measurements); another value fails the session's
// creation.
#pragma once
#include <onnxruntime_c_api.h>

namespace ortnative {

// Adds the ai.loracast custom-op domain to `options`. The domain is made on the first call and
// lives for the process: ORT's sessions keep pointers to it. Returns ORT's status (null: done).
OrtStatus* addLoraOps(const OrtApi* api, OrtSessionOptions* options);

}  // namespace ortnative
