// ai.loracast.MatMulNBitsLora (since version 1): a base projection in ORT's com.microsoft.MatMulNBits
// layout and its LoRA branch in one node,
//   Y [M, N] = A · dequantize(B)ᵀ + (A · lora_Aᵀ) · lora_Bᵀ,
// over float32 A [M, K]; MatMulNBits' B uint8 [N, k_blocks, block_size / 2] (4 bits), scales
// float32 [N · k_blocks] and zero_points uint8 [N · ⌈k_blocks / 2⌉] (any shape of that many
// elements; required); lora_A float32 [R, K] (packed modules stacked) and lora_B float32 [N, R]
// (scaled; block-diagonal for packed modules). R = 0 gives the base projection alone. Attributes as
// MatMulNBits names them: K, N, bits (4) and block_size (a power of two, 16 … 256); `kernel` as
// LoraShrinkExpand's (lora-op.h). A weight is (q − zero point) · scale, element t of a block in
// nibble t % 2 (low first) of byte t / 2 (shared/model-builder/quantize.ts).
// `accuracy_level` (optional, 0 … 4) is MatMulNBits' lowest accuracy allowed for A; both kernels
// compute in float32, the highest, whatever it says (so a 4-bit shrink-expand build's LoRA
// projections do not quantize A to int8 on the CPU, where MatMulNBits at level 4 does).
// Kernels: CPUExecutionProvider (plain loops, the reference; nbits-op.cc: far slower than MLAS's
// MatMulNBits) and CUDAExecutionProvider (lora-nbits.cuh through lora-cuda.cc; lora-cuda.h says
// which launches run for which M and `kernel`).
#pragma once
#include <onnxruntime_c_api.h>

namespace ortnative {

// The op's OrtCustomOp for CUDAExecutionProvider (`cuda`) or CPUExecutionProvider; static, lives for
// the process. lora-op.cc adds both to the ai.loracast domain.
OrtCustomOp* nbitsOp(bool cuda);

}  // namespace ortnative
