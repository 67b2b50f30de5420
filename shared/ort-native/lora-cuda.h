// The CUDA side of ai.loracast.LoraShrinkExpand (lora-op.h says what it computes): lora-kernels.cu's
// PTX, reached through the CUDA driver API, launched on ORT's compute stream (lora-cuda.cc).
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

}  // namespace ortnative
