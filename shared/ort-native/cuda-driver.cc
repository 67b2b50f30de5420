// The CUDA driver's entry points, bound by name from libcuda.so.1 (cuda-driver.h).
#include "cuda-driver.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

namespace ortnative {
namespace {

template <typename F>
void bind(void* library, const char* name, F* out, std::string* error) {
  *out = reinterpret_cast<F>(dlsym(library, name));
  if (!*out && error->empty()) *error = std::string("libcuda.so.1 has no ") + name;
}

}  // namespace

std::string driverMessage(const Driver& d, const char* call, CUresult result) {
  const char* text = nullptr;
  if (d.cuGetErrorString(result, &text) != CUDA_SUCCESS || !text) text = "unknown error";
  std::string message = std::string(call) + ": " + text + " (CUresult " + std::to_string(result) + ")";
  if (result == CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
    message += "; lora-kernels.ptx is PTX of CUDA 13.0: the driver must support CUDA 13.0 or later";
  return message;
}

const Driver& driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] {
    void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      const char* why = dlerror();
      d.error = std::string("dlopen libcuda.so.1 (the CUDA driver): ") + (why ? why : "failed");
      return;
    }
    std::string error;
    bind(library, "cuInit", &d.cuInit, &error);
    bind(library, "cuGetErrorString", &d.cuGetErrorString, &error);
    bind(library, "cuStreamGetCtx", &d.cuStreamGetCtx, &error);
    bind(library, "cuCtxGetCurrent", &d.cuCtxGetCurrent, &error);
    bind(library, "cuCtxSetCurrent", &d.cuCtxSetCurrent, &error);
    bind(library, "cuCtxGetDevice", &d.cuCtxGetDevice, &error);
    bind(library, "cuDeviceGetAttribute", &d.cuDeviceGetAttribute, &error);
    bind(library, "cuModuleLoadData", &d.cuModuleLoadData, &error);
    bind(library, "cuModuleGetFunction", &d.cuModuleGetFunction, &error);
    bind(library, "cuOccupancyMaxActiveBlocksPerMultiprocessor", &d.cuOccupancyMaxActiveBlocksPerMultiprocessor,
         &error);
    bind(library, "cuStreamIsCapturing", &d.cuStreamIsCapturing, &error);
    bind(library, "cuThreadExchangeStreamCaptureMode", &d.cuThreadExchangeStreamCaptureMode, &error);
    bind(library, "cuMemAlloc_v2", &d.cuMemAlloc, &error);
    bind(library, "cuMemFree_v2", &d.cuMemFree, &error);
    bind(library, "cuMemsetD32Async", &d.cuMemsetD32Async, &error);
    bind(library, "cuLaunchKernel", &d.cuLaunchKernel, &error);
    bind(library, "cuLaunchCooperativeKernel", &d.cuLaunchCooperativeKernel, &error);
    d.error = error;
    CUresult result = error.empty() ? d.cuInit(0) : CUDA_SUCCESS;
    if (result != CUDA_SUCCESS) d.error = driverMessage(d, "cuInit", result);
  });
  return d;
}


CublasSgemm cublasSgemm() {
  // Looked up until found (cheap: dlopen with RTLD_NOLOAD loads nothing), then kept.
  static std::atomic<CublasSgemm> found{nullptr};
  if (CublasSgemm sgemm = found.load()) return sgemm;
  for (const char* name : {"libcublas.so.13", "libcublas.so.12"})
    if (void* library = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD))
      if (void* symbol = dlsym(library, "cublasSgemm_v2")) {
        found.store(reinterpret_cast<CublasSgemm>(symbol));
        return found.load();
      }
  return nullptr;
}

}  // namespace ortnative
