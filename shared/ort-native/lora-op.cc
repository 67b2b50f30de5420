// ai.loracast.LoraShrinkExpand (lora-op.h says what it computes) as two OrtCustomOp kernels of one
// name: CPUExecutionProvider and CUDAExecutionProvider (ORT picks by the node's EP; the schema is
// shared: onnxruntime/core/session/custom_ops.cc, CreateSchema). This file checks the operands and
// holds the CPU kernel; the CUDA kernels and their launches are lora-cuda.cc's.
#include "lora-op.h"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "lora-cuda.h"
#include "nbits-op.h"
#include "op-support.h"

namespace ortnative {
namespace {

const char* const DOMAIN = "ai.loracast";
const char* const NAME = "LoraShrinkExpand";
constexpr size_t INPUTS = 4;  // x, A, B, y
// What a kernel instance keeps: the API and the node's choice.
struct OpKernel {
  const OrtApi* api;
  LoraKernelChoice choice;
};

OrtStatus* failure(const OrtApi* api, OrtErrorCode code, const std::string& message) {
  return api->CreateStatus(code, (std::string(NAME) + ": " + message).c_str());
}

OrtStatus* operands(const OrtApi* api, OrtKernelContext* context, LoraOperands* o) {
  const OrtValue* values[INPUTS] = {};
  Dims dims[INPUTS];
  const char* names[INPUTS] = {"x", "A", "B", "y"};
  for (size_t i = 0; i < INPUTS; i++) {
    if (OrtStatus* s = api->KernelContext_GetInput(context, i, &values[i])) return s;
    if (!values[i]) return failure(api, ORT_INVALID_ARGUMENT, std::string("input ") + names[i] + " is missing");
    if (OrtStatus* s = dimsOf(api, values[i], &dims[i])) return s;
    if (dims[i].rank != 2)
      return failure(api, ORT_INVALID_ARGUMENT,
                     std::string(names[i]) + " must be a matrix (rank 2), got " + shapeText(dims[i]));
  }
  o->xValue = values[0];
  o->m = dims[0].d[0];
  o->k = dims[0].d[1];
  o->r = dims[1].d[0];
  o->n = dims[2].d[0];
  if (dims[1].d[1] != o->k || dims[2].d[1] != o->r || dims[3].d[0] != o->m || dims[3].d[1] != o->n)
    return failure(api, ORT_INVALID_ARGUMENT,
                   "shapes do not fit x [M, K], A [R, K], B [N, R], y [M, N]: x " + shapeText(dims[0]) + ", A " +
                       shapeText(dims[1]) + ", B " + shapeText(dims[2]) + ", y " + shapeText(dims[3]));
  const void* data[INPUTS] = {};
  for (size_t i = 0; i < INPUTS; i++)
    if (OrtStatus* s = api->GetTensorData(values[i], &data[i])) return s;
  o->x = static_cast<const float*>(data[0]);
  o->a = static_cast<const float*>(data[1]);
  o->b = static_cast<const float*>(data[2]);
  o->y = static_cast<const float*>(data[3]);
  OrtValue* out = nullptr;
  if (OrtStatus* s = api->KernelContext_GetOutput(context, 0, dims[3].d, 2, &out)) return s;
  void* z = nullptr;
  if (OrtStatus* s = api->GetTensorMutableData(out, &z)) return s;
  o->z = static_cast<float*>(z);
  return nullptr;
}

// --- the CPU kernel -------------------------------------------------------------------------

constexpr int64_t CPU_COLUMNS = 256;  // columns of z per unit of the expand's parallel loop

struct CpuWork {
  const LoraOperands* o;
  float* h;  // [M, R]
  int64_t tiles;  // column tiles per row
};

OrtStatus* cpuCompute(void* kernel, OrtKernelContext* context) {
  const OrtApi* api = static_cast<const OpKernel*>(kernel)->api;
  LoraOperands o;
  if (OrtStatus* s = operands(api, context, &o)) return s;
  if (o.m == 0 || o.n == 0) return nullptr;
  if (o.r == 0) {
    std::memcpy(o.z, o.y, static_cast<size_t>(o.m * o.n) * sizeof(float));
    return nullptr;
  }
  std::vector<float> h(static_cast<size_t>(o.m * o.r));
  CpuWork work{&o, h.data(), (o.n + CPU_COLUMNS - 1) / CPU_COLUMNS};
  // Shrink: one row of h = x · Aᵀ per iteration.
  auto shrink = [](void* data, size_t row) {
    auto* w = static_cast<CpuWork*>(data);
    const LoraOperands& o = *w->o;
    for (int64_t j = 0; j < o.r; j++)
      w->h[row * o.r + j] = dot(o.x + row * o.k, o.a + j * o.k, o.k);
  };
  if (OrtStatus* s = api->KernelContext_ParallelFor(context, shrink, static_cast<size_t>(o.m), 0, &work)) return s;
  // Expand: z = y + h · Bᵀ, one (row, column tile) per iteration.
  auto expand = [](void* data, size_t unit) {
    auto* w = static_cast<CpuWork*>(data);
    const LoraOperands& o = *w->o;
    const int64_t row = static_cast<int64_t>(unit) / w->tiles;
    const int64_t first = static_cast<int64_t>(unit) % w->tiles * CPU_COLUMNS;
    const int64_t last = first + CPU_COLUMNS < o.n ? first + CPU_COLUMNS : o.n;
    const float* hr = w->h + row * o.r;
    for (int64_t c = first; c < last; c++) o.z[row * o.n + c] = o.y[row * o.n + c] + dot(hr, o.b + c * o.r, o.r);
  };
  return api->KernelContext_ParallelFor(context, expand, static_cast<size_t>(o.m * work.tiles), 0, &work);
}

// --- the CUDA kernel (lora-cuda.cc) ----------------------------------------------------------

OrtStatus* cudaCompute(void* kernel, OrtKernelContext* context) {
  const OpKernel* op = static_cast<const OpKernel*>(kernel);
  const OrtApi* api = op->api;
  LoraOperands o;
  if (OrtStatus* s = operands(api, context, &o)) return s;
  if (o.m == 0 || o.n == 0) return nullptr;
  // The kernels index within a row in int: a column or rank plus the grid's stride stays below 2^31.
  constexpr int64_t LIMIT = int64_t(1) << 30;
  if (o.k > LIMIT || o.r > LIMIT || o.n > LIMIT)
    return failure(api, ORT_INVALID_ARGUMENT,
                   "the CUDA kernels take K, R and N up to 2^30, got K " + std::to_string(o.k) + ", R " +
                       std::to_string(o.r) + ", N " + std::to_string(o.n));
  return loraCudaCompute(api, op->choice, context, o);
}

// --- the two OrtCustomOp structs ------------------------------------------------------------

// The node's `kernel` attribute (kernelChoice); both EPs check it, the CPU kernel has one
// implementation whatever it says.
OrtStatus* ORT_API_CALL createKernel(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo* info, void** kernel) {
  LoraKernelChoice choice = LoraKernelChoice::Auto;
  if (OrtStatus* s = kernelChoice(api, info, NAME, &choice)) return s;
  *kernel = new OpKernel{api, choice};
  return nullptr;
}
void ORT_API_CALL destroyKernel(void* kernel) { delete static_cast<OpKernel*>(kernel); }
ONNXTensorElementDataType ORT_API_CALL floatType(const OrtCustomOp*, size_t) {
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
size_t ORT_API_CALL inputCount(const OrtCustomOp*) { return INPUTS; }
size_t ORT_API_CALL outputCount(const OrtCustomOp*) { return 1; }
const char* ORT_API_CALL opName(const OrtCustomOp*) { return NAME; }

const OrtApi* inferApi = nullptr;  // set by addLoraOps before any session can infer

// z has y's type and shape.
OrtStatus* ORT_API_CALL inferShape(const OrtCustomOp*, OrtShapeInferContext* context) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (OrtStatus* s = inferApi->ShapeInferContext_GetInputTypeShape(context, INPUTS - 1, &info)) return s;
  return inferApi->ShapeInferContext_SetOutputTypeShape(context, 0, info);
}

template <const char* (*Provider)(const OrtCustomOp*), OrtStatus* (*Compute)(void*, OrtKernelContext*)>
OrtCustomOp makeOp() {
  OrtCustomOp op = customOpBase();
  op.GetName = opName;
  op.GetExecutionProviderType = Provider;
  op.GetInputType = floatType;
  op.GetInputTypeCount = inputCount;
  op.GetOutputType = floatType;
  op.GetOutputTypeCount = outputCount;
  op.KernelDestroy = destroyKernel;
  op.CreateKernelV2 = createKernel;
  op.KernelComputeV2 = [](void* kernel, OrtKernelContext* context) -> OrtStatusPtr { return Compute(kernel, context); };
  op.InferOutputShapeFn = inferShape;
  return op;
}
const char* ORT_API_CALL cpuProvider(const OrtCustomOp*) { return "CPUExecutionProvider"; }
const char* ORT_API_CALL cudaProvider(const OrtCustomOp*) { return "CUDAExecutionProvider"; }

}  // namespace

OrtStatus* addLoraOps(const OrtApi* api, OrtSessionOptions* options) {
  static OrtCustomOp cpuOp = makeOp<cpuProvider, cpuCompute>();
  static OrtCustomOp cudaOp = makeOp<cudaProvider, cudaCompute>();
  static OrtCustomOpDomain* domain = nullptr;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (!domain) {
    inferApi = api;
    OrtCustomOpDomain* made = nullptr;
    if (OrtStatus* s = api->CreateCustomOpDomain(DOMAIN, &made)) return s;
    OrtStatus* s = api->CustomOpDomain_Add(made, &cpuOp);
    if (!s) s = api->CustomOpDomain_Add(made, &cudaOp);
    if (!s) s = api->CustomOpDomain_Add(made, nbitsOp(false));
    if (!s) s = api->CustomOpDomain_Add(made, nbitsOp(true));
    if (s) {
      api->ReleaseCustomOpDomain(made);
      return s;
    }
    domain = made;
  }
  return api->AddCustomOpDomain(options, domain);
}

}  // namespace ortnative
