// What the ai.loracast custom ops (lora-op.cc, nbits-op.cc) share: reading an operand's dims
// without heap allocations, naming a shape in an error, the `kernel` attribute, the CPU kernels' dot
// product and the OrtCustomOp fields every op sets alike.
#pragma once
#include <onnxruntime_c_api.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "lora-cuda.h"

namespace ortnative {

// Rank and dims of one operand, as ORT reports them; dims beyond the third are not kept (no operand
// of these ops has more).
struct Dims {
  size_t rank = 0;
  int64_t d[3] = {0, 0, 0};
};

// "[2, 8]", or "rank 5" past three dims.
inline std::string shapeText(const Dims& dims) {
  if (dims.rank > 3) return "rank " + std::to_string(dims.rank);
  std::string s = "[";
  for (size_t i = 0; i < dims.rank; i++) s += (i ? ", " : "") + std::to_string(dims.d[i]);
  return s + "]";
}

// Fixed-size, on the stack: a decode step computes these nodes ~100 times, and every heap
// allocation here was host time of each.
inline OrtStatus* dimsOf(const OrtApi* api, const OrtValue* value, Dims* dims) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (OrtStatus* s = api->GetTensorTypeAndShape(value, &info)) return s;
  OrtStatus* s = api->GetDimensionsCount(info, &dims->rank);
  if (!s && dims->rank <= 3) s = api->GetDimensions(info, dims->d, dims->rank);
  api->ReleaseTensorTypeAndShapeInfo(info);
  return s;
}

// The node's optional string attribute `kernel`: absent or "auto", "split" or "fused" (lora-op.h);
// anything else fails the session's creation (ORT creates kernels while it initialises the session)
// with ORT_INVALID_ARGUMENT naming the values, prefixed by the op's name.
inline OrtStatus* kernelChoice(const OrtApi* api, const OrtKernelInfo* info, const char* op,
                               LoraKernelChoice* choice) {
  *choice = LoraKernelChoice::Auto;
  // A null buffer asks for the value's size; the call fails only when the node has no such attribute.
  size_t size = 0;
  if (OrtStatus* absent = api->KernelInfoGetAttribute_string(info, "kernel", nullptr, &size)) {
    api->ReleaseStatus(absent);
    return nullptr;
  }
  std::string value(size, '\0');
  if (OrtStatus* s = api->KernelInfoGetAttribute_string(info, "kernel", value.data(), &size)) return s;
  value.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
  if (value == "split")
    *choice = LoraKernelChoice::Split;
  else if (value == "fused")
    *choice = LoraKernelChoice::Fused;
  else if (value != "auto")
    return api->CreateStatus(ORT_INVALID_ARGUMENT,
                             (std::string(op) + ": attribute kernel must be \"auto\", \"split\" or \"fused\", got \"" +
                              value.substr(0, 64) + "\"")
                                 .c_str());
  return nullptr;
}

// A float32 dot product in eight partial sums (independent chains the compiler can vectorise): the
// CPU kernels' one sum.
inline float dot(const float* p, const float* q, int64_t len) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int j = 0; j < 8; j++) s[j] += p[i + j] * q[i + j];
  float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < len; i++) total += p[i] * q[i];
  return total;
}

// What every ai.loracast op's OrtCustomOp shares: this API version, every input and output
// required and in the EP's default memory, since version 1, every other entry null (each op sets
// its name, provider, types, counts and kernel functions).
inline OrtCustomOp customOpBase() {
  OrtCustomOp op;
  std::memset(&op, 0, sizeof op);
  op.version = ORT_API_VERSION;
  op.GetInputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; };
  op.GetOutputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; };
  op.GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
  op.GetStartVersion = [](const OrtCustomOp*) { return 1; };
  return op;
}

}  // namespace ortnative
