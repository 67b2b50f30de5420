// ai.loracast.MatMulNBitsLora (nbits-op.h says what it computes): the operands' checks, the CPU
// kernel, and the two OrtCustomOp structs (ORT picks by the node's EP); the CUDA launches are
// lora-cuda.cc's.
#include "nbits-op.h"

#include <algorithm>
#include <string>
#include <vector>

#include "lora-cuda.h"
#include "op-support.h"

namespace ortnative {
namespace {

const char* const NAME = "MatMulNBitsLora";
constexpr size_t INPUTS = 6;  // A, B, scales, zero_points, lora_A, lora_B

// What a kernel instance keeps: the API, the node's kernel choice and its attributes.
struct OpKernel {
  const OrtApi* api;
  LoraKernelChoice choice;
  int64_t k, n, kBlocks;
  int blockShift;
};

OrtStatus* failure(const OrtApi* api, OrtErrorCode code, const std::string& message) {
  return api->CreateStatus(code, (std::string(NAME) + ": " + message).c_str());
}

int64_t elements(const Dims& dims) {
  int64_t count = 1;
  for (size_t i = 0; i < dims.rank; i++) count *= dims.d[i];
  return count;
}

OrtStatus* operands(const OpKernel& op, OrtKernelContext* context, NbitsOperands* o) {
  const OrtApi* api = op.api;
  const OrtValue* values[INPUTS] = {};
  Dims dims[INPUTS];
  const char* names[INPUTS] = {"A", "B", "scales", "zero_points", "lora_A", "lora_B"};
  for (size_t i = 0; i < INPUTS; i++) {
    if (OrtStatus* s = api->KernelContext_GetInput(context, i, &values[i])) return s;
    if (!values[i]) return failure(api, ORT_INVALID_ARGUMENT, std::string("input ") + names[i] + " is missing");
    if (OrtStatus* s = dimsOf(api, values[i], &dims[i])) return s;
  }
  o->xValue = values[0];
  o->k = op.k;
  o->n = op.n;
  o->kBlocks = op.kBlocks;
  o->blockShift = op.blockShift;
  o->m = dims[0].rank == 2 ? dims[0].d[0] : -1;
  o->r = dims[4].rank == 2 ? dims[4].d[0] : -1;
  const int64_t blob = (int64_t(1) << op.blockShift) / 2;
  const bool fits = o->m >= 0 && o->r >= 0 && dims[0].d[1] == op.k && dims[1].rank == 3 && dims[1].d[0] == op.n &&
                    dims[1].d[1] == op.kBlocks && dims[1].d[2] == blob && dims[2].rank <= 2 &&
                    elements(dims[2]) == op.n * op.kBlocks && dims[3].rank <= 2 &&
                    elements(dims[3]) == op.n * ((op.kBlocks + 1) / 2) && dims[4].d[1] == op.k &&
                    dims[5].rank == 2 && dims[5].d[0] == op.n && dims[5].d[1] == o->r;
  if (!fits) {
    std::string got;
    for (size_t i = 0; i < INPUTS; i++) got += std::string(i ? ", " : "") + names[i] + " " + shapeText(dims[i]);
    return failure(api, ORT_INVALID_ARGUMENT,
                   "shapes do not fit A [M, K], B [N, k_blocks, block_size / 2], scales [N · k_blocks], "
                   "zero_points [N · ⌈k_blocks / 2⌉], lora_A [R, K], lora_B [N, R] with K " +
                       std::to_string(op.k) + ", N " + std::to_string(op.n) + ", k_blocks " +
                       std::to_string(op.kBlocks) + ": " + got);
  }
  const void* data[INPUTS] = {};
  for (size_t i = 0; i < INPUTS; i++)
    if (OrtStatus* s = api->GetTensorData(values[i], &data[i])) return s;
  o->x = static_cast<const float*>(data[0]);
  o->q = static_cast<const uint8_t*>(data[1]);
  o->scales = static_cast<const float*>(data[2]);
  o->zeroPoints = static_cast<const uint8_t*>(data[3]);
  o->a = static_cast<const float*>(data[4]);
  o->b = static_cast<const float*>(data[5]);
  const int64_t shape[2] = {o->m, o->n};
  OrtValue* out = nullptr;
  if (OrtStatus* s = api->KernelContext_GetOutput(context, 0, shape, 2, &out)) return s;
  void* z = nullptr;
  if (OrtStatus* s = api->GetTensorMutableData(out, &z)) return s;
  o->z = static_cast<float*>(z);
  return nullptr;
}

// --- the CPU kernel -------------------------------------------------------------------------

constexpr int64_t CPU_COLUMNS = 64;  // columns of Y per unit of the parallel loop

struct CpuWork {
  const NbitsOperands* o;
  const float* h;  // [M, R]
  int64_t tiles;
};

// One tile of columns. Per column and block, the block's codes become floats once ((code − zero
// point) · scale, as MatMulNBits dequantizes), then every row takes its dot with them; the LoRA term
// is added last. Plain loops the compiler vectorises: on the CPU this op is the reference, and the
// default CPU build has none (its LoRA form is gemm, docs/architecture.md).
void cpuColumns(void* data, size_t unit) {
  const auto* w = static_cast<const CpuWork*>(data);
  const NbitsOperands& o = *w->o;
  const int64_t block = int64_t(1) << o.blockShift, zpCols = (o.kBlocks + 1) / 2;
  const int64_t first = static_cast<int64_t>(unit) * CPU_COLUMNS;
  const int64_t last = first + CPU_COLUMNS < o.n ? first + CPU_COLUMNS : o.n;
  float weights[256];  // one block, block ≤ 256
  std::vector<float> sums(static_cast<size_t>(o.m));
  for (int64_t c = first; c < last; c++) {
    std::fill(sums.begin(), sums.end(), 0.f);
    for (int64_t blk = 0; blk < o.kBlocks; blk++) {
      const float scale = o.scales[c * o.kBlocks + blk];
      const int zero = (o.zeroPoints[c * zpCols + blk / 2] >> ((blk & 1) * 4)) & 15;
      const uint8_t* bytes = o.q + (c * o.kBlocks + blk) * (block / 2);
      for (int64_t t = 0; t < block / 2; t++) {
        weights[2 * t] = static_cast<float>((bytes[t] & 15) - zero) * scale;
        weights[2 * t + 1] = static_cast<float>((bytes[t] >> 4) - zero) * scale;
      }
      const int64_t k0 = blk * block, len = k0 + block <= o.k ? block : o.k - k0;
      for (int64_t i = 0; i < o.m; i++) sums[i] += dot(o.x + i * o.k + k0, weights, len);
    }
    for (int64_t i = 0; i < o.m; i++) o.z[i * o.n + c] = sums[i] + dot(w->h + i * o.r, o.b + c * o.r, o.r);
  }
}

OrtStatus* cpuCompute(void* kernel, OrtKernelContext* context) {
  const auto* op = static_cast<const OpKernel*>(kernel);
  NbitsOperands o;
  if (OrtStatus* s = operands(*op, context, &o)) return s;
  if (o.m == 0 || o.n == 0) return nullptr;
  std::vector<float> h(static_cast<size_t>(o.m * o.r));
  for (int64_t i = 0; i < o.m; i++)
    for (int64_t j = 0; j < o.r; j++) h[i * o.r + j] = dot(o.x + i * o.k, o.a + j * o.k, o.k);
  CpuWork work{&o, h.data(), (o.n + CPU_COLUMNS - 1) / CPU_COLUMNS};
  return op->api->KernelContext_ParallelFor(context, cpuColumns, static_cast<size_t>(work.tiles), 0, &work);
}

OrtStatus* cudaCompute(void* kernel, OrtKernelContext* context) {
  const auto* op = static_cast<const OpKernel*>(kernel);
  NbitsOperands o;
  if (OrtStatus* s = operands(*op, context, &o)) return s;
  if (o.m == 0 || o.n == 0) return nullptr;
  constexpr int64_t LIMIT = int64_t(1) << 30;  // the kernels index within a row in int
  if (o.k > LIMIT || o.r > LIMIT || o.n > LIMIT)
    return failure(op->api, ORT_INVALID_ARGUMENT,
                   "the CUDA kernels take K, R and N up to 2^30, got K " + std::to_string(o.k) + ", R " +
                       std::to_string(o.r) + ", N " + std::to_string(o.n));
  return nbitsCudaCompute(op->api, op->choice, context, o);
}

// --- the OrtCustomOp structs ----------------------------------------------------------------

OrtStatus* intAttribute(const OrtApi* api, const OrtKernelInfo* info, const char* name, int64_t* value) {
  if (OrtStatus* s = api->KernelInfoGetAttribute_int64(info, name, value)) {
    api->ReleaseStatus(s);
    return failure(api, ORT_INVALID_ARGUMENT, std::string("attribute ") + name + " (int) is required");
  }
  return nullptr;
}

// K, N, bits and block_size, checked (bits 4; block_size a power of two from 16 to 256; K and N
// from 1 to 2^30), accuracy_level (0 … 4, absent 0) and `kernel`; a bad value fails the session's
// creation.
OrtStatus* ORT_API_CALL createKernel(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo* info, void** kernel) {
  int64_t k = 0, n = 0, bits = 0, block = 0;
  for (auto [name, value] : {std::pair{"K", &k}, std::pair{"N", &n}, std::pair{"bits", &bits},
                             std::pair{"block_size", &block}})
    if (OrtStatus* s = intAttribute(api, info, name, value)) return s;
  if (bits != 4) return failure(api, ORT_INVALID_ARGUMENT, "bits must be 4, got " + std::to_string(bits));
  int shift = 4;
  while (shift <= 8 && (int64_t(1) << shift) != block) shift++;
  if (shift > 8)
    return failure(api, ORT_INVALID_ARGUMENT,
                   "block_size must be a power of two from 16 to 256, got " + std::to_string(block));
  constexpr int64_t LIMIT = int64_t(1) << 30;
  if (k < 1 || n < 1 || k > LIMIT || n > LIMIT)
    return failure(api, ORT_INVALID_ARGUMENT,
                   "K and N must be from 1 to 2^30, got K " + std::to_string(k) + ", N " + std::to_string(n));
  // Optional, as MatMulNBits': checked, then computed above (float32 meets every level).
  int64_t accuracy = 0;
  if (OrtStatus* absent = api->KernelInfoGetAttribute_int64(info, "accuracy_level", &accuracy)) {
    api->ReleaseStatus(absent);
    accuracy = 0;
  }
  if (accuracy < 0 || accuracy > 4)
    return failure(api, ORT_INVALID_ARGUMENT, "accuracy_level must be 0 to 4, got " + std::to_string(accuracy));
  LoraKernelChoice choice = LoraKernelChoice::Auto;
  if (OrtStatus* s = kernelChoice(api, info, NAME, &choice)) return s;
  *kernel = new OpKernel{api, choice, k, n, (k + block - 1) / block, shift};
  return nullptr;
}
void ORT_API_CALL destroyKernel(void* kernel) { delete static_cast<OpKernel*>(kernel); }
ONNXTensorElementDataType ORT_API_CALL inputType(const OrtCustomOp*, size_t index) {
  return index == 1 || index == 3 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
ONNXTensorElementDataType ORT_API_CALL outputType(const OrtCustomOp*, size_t) {
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
size_t ORT_API_CALL inputCount(const OrtCustomOp*) { return INPUTS; }
size_t ORT_API_CALL outputCount(const OrtCustomOp*) { return 1; }
const char* ORT_API_CALL opName(const OrtCustomOp*) { return NAME; }
const char* ORT_API_CALL cpuProvider(const OrtCustomOp*) { return "CPUExecutionProvider"; }
const char* ORT_API_CALL cudaProvider(const OrtCustomOp*) { return "CUDAExecutionProvider"; }

OrtCustomOp makeOp(bool cuda) {
  OrtCustomOp op = customOpBase();  // no shape inference: Y [M, N]
  op.GetName = opName;
  op.GetExecutionProviderType = cuda ? cudaProvider : cpuProvider;
  op.GetInputType = inputType;
  op.GetInputTypeCount = inputCount;
  op.GetOutputType = outputType;
  op.GetOutputTypeCount = outputCount;
  op.KernelDestroy = destroyKernel;
  op.CreateKernelV2 = createKernel;
  op.KernelComputeV2 = cuda ? cudaCompute : cpuCompute;
  return op;
}

}  // namespace

OrtCustomOp* nbitsOp(bool cuda) {
  static OrtCustomOp cpuOp = makeOp(false);
  static OrtCustomOp cudaOp = makeOp(true);
  return cuda ? &cudaOp : &cpuOp;
}

}  // namespace ortnative
