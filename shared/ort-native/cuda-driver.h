// The CUDA driver API as the addon's CUDA kernels reach it (lora-cuda.cc): the addon is built
// with g++ alone, so it loads the driver (libcuda.so.1, dlopen'ed on the first CUDA compute; it is
// loaded in every process that runs the CUDA EP) and declares the types and entry points it uses
// here, as cuda.h declares them, rather than including cuda.h.
#pragma once
#include <cstddef>
#include <string>

namespace ortnative {

// The driver API's types and the entry points used, as cuda.h declares them (CUDA 12/13 ABI).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;
constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
constexpr CUresult CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE = 720;
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH = 95;
constexpr int CU_STREAM_CAPTURE_STATUS_NONE = 0;
constexpr int CU_STREAM_CAPTURE_MODE_RELAXED = 2;

// The entry points, bound once per process (driver()).
struct Driver {
  CUresult (*cuInit)(unsigned int) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char**) = nullptr;
  CUresult (*cuStreamGetCtx)(CUstream, CUcontext*) = nullptr;
  CUresult (*cuCtxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxGetDevice)(CUdevice*) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule*, const void*) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int*, CUfunction, int, size_t) = nullptr;
  CUresult (*cuStreamIsCapturing)(CUstream, int*) = nullptr;
  CUresult (*cuThreadExchangeStreamCaptureMode)(int*) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned int, size_t, CUstream) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void**, void**) = nullptr;
  CUresult (*cuLaunchCooperativeKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                        unsigned, CUstream, void**) = nullptr;
  std::string error;  // why the driver is unusable; empty once loaded
};


// The driver, loaded and initialised once per process (never unloaded: the CUDA EP keeps it loaded
// anyway); `error` says why it is unusable, empty when it is usable.
const Driver& driver();

// "call: the driver's text (CUresult N)", with what to do about an unsupported PTX version.
std::string driverMessage(const Driver& d, const char* call, CUresult result);

// cuBLAS's single-precision GEMM (cublasSgemm_v2, column-major), from the libcublas the CUDA EP has
// loaded already (so never a second copy), or null while none is loaded (then the caller runs its
// kernels without cuBLAS); kept once found.
// The handle is the one ORT keeps for the compute stream (KernelContext_GetResource): ORT has bound
// it to that stream and set its math mode (TF32 as the session asks).
using CublasSgemm = int (*)(void* handle, int transa, int transb, int m, int n, int k, const float* alpha,
                            const float* a, int lda, const float* b, int ldb, const float* beta, float* c, int ldc);
CublasSgemm cublasSgemm();
constexpr int CUBLAS_OP_N = 0;
constexpr int CUBLAS_OP_T = 1;

}  // namespace ortnative
