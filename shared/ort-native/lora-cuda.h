// The CUDA side of ai.loracast.LoraShrinkExpand (lora-op.h) and ai.loracast.MatMulNBitsLora
// (nbits-op.h): lora-kernels.cu's PTX, reached through the CUDA driver API (cuda-driver.h), launched
// on ORT's compute stream (lora-cuda.cc).
#pragma once
#include <onnxruntime_c_api.h>

#include <cstdint>

namespace ortnative {

// One compute's operands, checked against each other by lora-op.cc: float32 x [m, k], A [r, k],
// B [n, r], y [m, n] and the output z [m, n], all in the op's device memory.
struct LoraOperands {
  const float* x = nullptr;
  const float* a = nullptr;
  const float* b = nullptr;
  const float* y = nullptr;
  float* z = nullptr;
  int64_t m = 0, k = 0, r = 0, n = 0;
  const OrtValue* xValue = nullptr;  // x itself: where its memory is says which allocator to use
};

// The node's `kernel` attribute (lora-op.h): which CUDA kernels run.
enum class LoraKernelChoice { Auto, Split, Fused };

// Launches z = y + (x · Aᵀ) · Bᵀ on the context's compute stream (m, n > 0; k, r, n ≤ 2^30): the
// one-launch lora_fused where `choice` and the shape allow it, else lora_shrink then lora_expand.
// Never synchronises. Returns ORT's status: null when launched, ORT_RUNTIME_EXCEPTION with the
// driver's message when the driver, the PTX module or a launch fails.
OrtStatus* loraCudaCompute(const OrtApi* api, LoraKernelChoice choice, OrtKernelContext* context,
                           const LoraOperands& o);

// One MatMulNBitsLora compute's operands, checked by nbits-op.cc, in the op's device memory: float32
// x [m, k]; MatMulNBits' 4-bit weight q [n, kBlocks, 2^blockShift / 2] uint8, scales [n, kBlocks]
// float32 and zero points [n, ⌈kBlocks / 2⌉] uint8 (null: 8); lora_A [r, k] and lora_B [n, r]
// float32; the output z [m, n].
struct NbitsOperands {
  const float* x = nullptr;
  const uint8_t* q = nullptr;
  const float* scales = nullptr;
  const uint8_t* zeroPoints = nullptr;
  const float* a = nullptr;
  const float* b = nullptr;
  float* z = nullptr;
  int64_t m = 0, k = 0, n = 0, r = 0, kBlocks = 0;
  int blockShift = 0;  // log2 of the block size (4 … 8)
  const OrtValue* xValue = nullptr;  // x itself: where its memory is says which allocator to use
};

// Launches z = x · dequantize(q)ᵀ + (x · Aᵀ) · Bᵀ on the context's compute stream (m, n > 0; k, r,
// n ≤ 2^30). `choice` Auto: lora_nbits in one cooperative launch with its own shrink and a grid
// barrier (fused) for 1 ≤ m ≤ 8 and r > 0; lora_shrink (r > 0) then lora_nbits (split) up to 31
// rows; from 32 rows the weight dequantized into scratch and multiplied with cuBLAS's SGEMM on ORT's
// handle, then lora_shrink and lora_expand (gemm; split when the EP offers no handle or no libcublas
// is loaded). Fused: fused wherever it applies, else as Auto. Split: split for every m. Fused and
// split give the same bits; gemm others. Never synchronises. Returns ORT's status: null when
// launched, ORT_RUNTIME_EXCEPTION with the driver's or cuBLAS's message when a launch fails.
OrtStatus* nbitsCudaCompute(const OrtApi* api, LoraKernelChoice choice, OrtKernelContext* context,
                            const NbitsOperands& o);

}  // namespace ortnative
