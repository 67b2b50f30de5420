// ai.loracast.LoraShrinkExpand (since version 1), the fused LoRA op every session of the addon
// knows: z [M, N] = y + (x · Aᵀ) · Bᵀ over float32 x [M, K], A [R, K] (lora_A, packed modules
// stacked), B [N, R] (lora_B, scaled; block-diagonal for packed modules) and y [M, N] (the base
// projection): the two Gemms `u = Gemm(x, A, transB=1)`, `z = Gemm(u, B, C=y, transB=1)` of
// shared/model-builder/decoder-graph.ts in one node. R = 0 gives z = y, M = 0 an empty z.
// Kernels: CPUExecutionProvider (plain loops, the reference; lora-op.cc) and CUDAExecutionProvider
// (lora-kernels.cu, loaded as PTX through the CUDA driver API on the first compute; lora-cuda.cc):
// lora_shrink then lora_expand, or lora_fused, one launch with a grid barrier, which takes
// 1 ≤ M ≤ 8 and R > 0. Both give every z element the same bits. Optional string attribute `kernel`
// (CUDA): "auto" (absent: lora_fused up to lora-cuda.cc's FUSED_MAX_ROWS rows, 8, the two launches
// above), "split" (always the two launches) or "fused" (lora_fused wherever it applies, whatever
// FUSED_MAX_ROWS says; for measurements); another value fails the session's creation.
#pragma once
#include <onnxruntime_c_api.h>

namespace ortnative {

// Adds the ai.loracast custom-op domain to `options`. The domain is made on the first call and
// lives for the process: ORT's sessions keep pointers to it. Returns ORT's status (null: done).
OrtStatus* addLoraOps(const OrtApi* api, OrtSessionOptions* options);

}  // namespace ortnative
