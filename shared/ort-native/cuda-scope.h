// What the addon's CUDA launches (lora-cuda.cc) need around them: their errors as ORT statuses, the
// compute stream with its CUDA context current, and scratch buffers from ORT's arena.
#pragma once
#include <onnxruntime_c_api.h>

#include <cstdint>
#include <string>

#include "cuda-driver.h"

namespace ortnative {

// ORT_RUNTIME_EXCEPTION "ai.loracast CUDA kernels: <message>".
inline OrtStatus* failure(const OrtApi* api, const std::string& message) {
  return api->CreateStatus(ORT_RUNTIME_EXCEPTION, ("ai.loracast CUDA kernels: " + message).c_str());
}

// A float scratch buffer from ORT's allocator for x's device (the arena, on the compute
// stream) around `launch`, given back right after it: the arena hands it out again only in this
// stream's order, after the launches. `launch` gets null when `floats` is 0.
template <typename Launch>
OrtStatus* withScratch(const OrtApi* api, OrtKernelContext* context, const OrtValue* xValue, int64_t floats,
                       Launch launch) {
  if (floats == 0) return launch(nullptr);
  const OrtMemoryInfo* device = nullptr;
  if (OrtStatus* s = api->GetTensorMemoryInfo(xValue, &device)) return s;
  OrtAllocator* allocator = nullptr;
  if (OrtStatus* s = api->KernelContext_GetAllocator(context, device, &allocator)) return s;
  void* scratch = nullptr;
  OrtStatus* status =
      api->KernelContext_GetScratchBuffer(context, device, static_cast<size_t>(floats) * sizeof(float), &scratch);
  if (!status) status = launch(static_cast<float*>(scratch));
  if (scratch) allocator->Free(allocator, scratch);
  api->ReleaseAllocator(allocator);
  return status;
}

// The compute stream of `context` with its CUDA context current on this thread while it lives (the
// CUDA EP's thread normally has it current already: the primary context of its device); `status`
// is set when either cannot be had.
class StreamScope {
 public:
  StreamScope(const OrtApi* api, const Driver& d, OrtKernelContext* context) : d_(d) {
    void* handle = nullptr;
    if ((status = api->KernelContext_GetGPUComputeStream(context, &handle))) return;
    stream = static_cast<CUstream>(handle);
    CUresult result = d.cuStreamGetCtx(stream, &streamContext);
    if (result != CUDA_SUCCESS) {
      status = failure(api, driverMessage(d, "cuStreamGetCtx", result));
      return;
    }
    result = d.cuCtxGetCurrent(&previous_);
    if (result == CUDA_SUCCESS && previous_ != streamContext) result = d.cuCtxSetCurrent(streamContext);
    if (result != CUDA_SUCCESS) {
      status = failure(api, driverMessage(d, "cuCtxSetCurrent", result));
      previous_ = streamContext;  // nothing to restore
    }
  }
  ~StreamScope() {
    if (previous_ != streamContext) d_.cuCtxSetCurrent(previous_);
  }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

  CUstream stream = nullptr;
  CUcontext streamContext = nullptr;
  OrtStatus* status = nullptr;

 private:
  const Driver& d_;
  CUcontext previous_ = nullptr;
};

}  // namespace ortnative
