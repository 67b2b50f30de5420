// Helpers of addon.cc (one translation unit; this header is included only there). The addon is
// loracast's N-API addon over ONNX Runtime's C API (onnxruntime_c_api.h, ORT 1.29.0 and later):
// what onnxruntime-node does not expose. Sessions on the CPU or CUDA EP with the CUDA provider
// options device_id, use_tf32 and enable_cuda_graph; tensors allocated with the session's own
// allocator (device memory on CUDA) that stay there across runs; asynchronous runs (napi_async_work:
// RunWithBinding on a libuv worker thread) through OrtIoBinding, with host typed arrays or those
// tensors as inputs and those tensors, host memory or ORT-allocated device memory as outputs; the
// run option gpu_graph_id for CUDA graph capture and replay. index.ts is the typed front door; this
// file checks only what it must to stay memory-safe and leaves the model's own checks (dtype, rank,
// dims, missing inputs) to ORT, whose message becomes the JS error.
#pragma once
#define NAPI_VERSION 8
#include <dlfcn.h>
#include <node_api.h>
#include <onnxruntime_c_api.h>

#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "lora-op.h"
#include "run-thread.h"

namespace ortnative {

const OrtApi* ort = nullptr;
OrtEnv* ortEnv = nullptr;

// A failure to report as a JS Error (ORT's message or ours).
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A JS exception is already pending (an N-API call threw): nothing more to throw.
struct Pending {};

void check(OrtStatus* status) {
  if (status == nullptr) return;
  std::string message = ort->GetErrorMessage(status);
  ort->ReleaseStatus(status);
  throw Failure(message);
}

void napi(napi_env env, napi_status status) {
  if (status == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) throw Pending{};
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  throw Failure(std::string("N-API: ") + (info && info->error_message ? info->error_message : "call failed"));
}

template <typename T, void (*Release)(T*)>
struct Owned {
  T* p = nullptr;
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { if (p) Release(p); }
};
void releaseValue(OrtValue* v) { ort->ReleaseValue(v); }
void releaseBinding(OrtIoBinding* b) { ort->ReleaseIoBinding(b); }
void releaseRunOptions(OrtRunOptions* r) { ort->ReleaseRunOptions(r); }
void releaseMemoryInfo(OrtMemoryInfo* m) { ort->ReleaseMemoryInfo(m); }
using Value = Owned<OrtValue, releaseValue>;

// dtype names as onnxruntime-common's Tensor.type spells them, with ONNX's element type and the
// typed array that carries them.
struct DType {
  const char* name;
  ONNXTensorElementDataType onnx;
  napi_typedarray_type array;
  size_t bytes;
};
const DType DTYPES[] = {
    {"float32", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, napi_float32_array, 4},
    {"float16", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, napi_uint16_array, 2},
    {"int32", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, napi_int32_array, 4},
    {"int64", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, napi_bigint64_array, 8},
    {"uint8", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, napi_uint8_array, 1},
    {"int8", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, napi_int8_array, 1},
    {"bool", ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, napi_uint8_array, 1},
};
const DType& dtypeByName(const std::string& name) {
  for (const auto& d : DTYPES) if (name == d.name) return d;
  throw Failure("unsupported dtype '" + name + "' (float32, float16, int32, int64, uint8, int8, bool)");
}
const DType& dtypeByOnnx(ONNXTensorElementDataType onnx) {
  for (const auto& d : DTYPES) if (d.onnx == onnx) return d;
  throw Failure("output of unsupported ONNX element type " + std::to_string(static_cast<int>(onnx)));
}

// An ONNX model of one Identity node y = x over tensor(elem) of any shape, protobuf-encoded by hand
// (onnx.proto3: ModelProto ir_version=1, graph=7, opset_import=8; GraphProto node=1, name=2,
// input=11, output=12). Copies host data into a device tensor and back without linking cudart.
std::string identityModel(ONNXTensorElementDataType elem) {
  auto valueInfo = [&](char name) { return std::string{0x0a, 0x01, name, 0x12, 0x04, 0x0a, 0x02, 0x08, static_cast<char>(elem)}; };
  std::string node = std::string{0x0a, 0x01, 'x', 0x12, 0x01, 'y', 0x22, 0x08} + "Identity";
  std::string graph = std::string{0x0a, static_cast<char>(node.size())} + node + std::string{0x12, 0x01, 'g'} +
                      std::string{0x5a, 0x09} + valueInfo('x') + std::string{0x62, 0x09} + valueInfo('y');
  return std::string{0x08, 0x08} + std::string{0x3a, static_cast<char>(graph.size())} + graph +
         std::string{0x42, 0x02, 0x10, 0x0d};
}

struct SessionOptionsSpec {
  bool cuda = false;
  int deviceId = 0;
  bool useTf32 = true;
  bool enableCudaGraph = false;
  int intraOpThreads = 0;
  bool dedicatedThread = false;
};

OrtSessionOptions* makeOptions(const SessionOptionsSpec& spec, bool cudaGraph) {
  OrtSessionOptions* options = nullptr;
  check(ort->CreateSessionOptions(&options));
  try {
    // Every session knows ai.loracast.LoraShrinkExpand (lora-op.h), whatever its EP.
    check(addLoraOps(ort, options));
    check(ort->SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL));
    if (spec.intraOpThreads > 0) check(ort->SetIntraOpNumThreads(options, spec.intraOpThreads));
    if (spec.cuda) {
      OrtCUDAProviderOptionsV2* cuda = nullptr;
      check(ort->CreateCUDAProviderOptions(&cuda));
      std::string device = std::to_string(spec.deviceId);
      const char* keys[] = {"device_id", "use_tf32", "enable_cuda_graph"};
      const char* values[] = {device.c_str(), spec.useTf32 ? "1" : "0", cudaGraph ? "1" : "0"};
      OrtStatus* status = ort->UpdateCUDAProviderOptions(cuda, keys, values, 3);
      if (status == nullptr) status = ort->SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda);
      ort->ReleaseCUDAProviderOptions(cuda);
      check(status);
    }
  } catch (...) {
    ort->ReleaseSessionOptions(options);
    throw;
  }
  return options;
}

// A session, its device allocator and the Identity sessions that copy into and out of its tensors.
// Tensors hold a shared_ptr to it: the allocator that owns their memory lives as long as they do.
struct SessionState {
  SessionOptionsSpec spec;
  OrtSession* session = nullptr;
  OrtMemoryInfo* deviceInfo = nullptr;
  OrtAllocator* deviceAllocator = nullptr;  // the session's CUDA allocator; null on the CPU EP
  OrtMemoryInfo* hostInfo = nullptr;
  // CUDA: page-locked host memory (the EP's pinned allocator) for "host" outputs, whose copy from the
  // device is then a DMA transfer instead of a staged pageable one (about 3 GB/s measured on the
  // H200: 1.5 ms for batch 8's 4.9 MB of logits per step). Null on the CPU EP, or where the session
  // has no pinned allocator: "host" outputs then go to `hostInfo`.
  OrtMemoryInfo* pinnedInfo = nullptr;
  std::vector<std::string> inputs, outputs;
  // Each input's position in `inputs`: a run checks its feeds by name in O(1) each (a LoRA decoder
  // has ~250 inputs, whose pairwise comparison cost more than ORT's own run set-up).
  std::unordered_map<std::string, size_t> inputIndex;
  std::map<int, OrtSession*> identities;
  std::unique_ptr<RunThread> thread;  // with dedicatedThread: where its runs go, in order
  ~SessionState() {
    thread.reset();
    for (auto& entry : identities) ort->ReleaseSession(entry.second);
    if (deviceAllocator) ort->ReleaseAllocator(deviceAllocator);
    if (deviceInfo) ort->ReleaseMemoryInfo(deviceInfo);
    if (hostInfo) ort->ReleaseMemoryInfo(hostInfo);
    if (pinnedInfo) ort->ReleaseMemoryInfo(pinnedInfo);
    if (session) ort->ReleaseSession(session);
  }
  OrtSession* identity(ONNXTensorElementDataType elem) {
    auto found = identities.find(elem);
    if (found != identities.end()) return found->second;
    std::string model = identityModel(elem);
    // Never under CUDA graphs: its bound addresses change from copy to copy.
    OrtSessionOptions* options = makeOptions(spec, false);
    OrtSession* s = nullptr;
    OrtStatus* status = ort->CreateSessionFromArray(ortEnv, model.data(), model.size(), options, &s);
    ort->ReleaseSessionOptions(options);
    check(status);
    identities[elem] = s;
    return s;
  }
};

// A device tensor. Its bytes are reported to V8 as external memory (napi_adjust_external_memory)
// while it lives, so that dropped tensors are collected in time; it is destroyed only on the JS
// thread (handle finalizer, `release`, or a run's completion dropping its hold).
struct TensorState {
  std::shared_ptr<SessionState> owner;
  OrtValue* value = nullptr;
  const DType* dtype = nullptr;
  std::vector<int64_t> dims;
  size_t count = 1;
  napi_env env = nullptr;
  int64_t external = 0;
  ~TensorState() {
    if (value) ort->ReleaseValue(value);
    int64_t total;
    if (external) napi_adjust_external_memory(env, -external, &total);
  }
  void account(napi_env e) {
    int64_t total;
    napi(e, napi_adjust_external_memory(e, static_cast<int64_t>(count * dtype->bytes), &total));
    env = e;
    external = static_cast<int64_t>(count * dtype->bytes);
  }
};

// What a JS handle (an External) points at; `release` empties it early.
template <typename T>
struct Handle {
  std::shared_ptr<T> p;
};
const napi_type_tag SESSION_TAG = {0x6c6f7261636173ull, 0x5e55101e01ull};
const napi_type_tag TENSOR_TAG = {0x6c6f7261636173ull, 0x7e4505e01ull};

template <typename T>
napi_value wrap(napi_env env, std::shared_ptr<T> p, const napi_type_tag* tag) {
  auto* handle = new Handle<T>{std::move(p)};
  napi_value out;
  napi_status status = napi_create_external(
      env, handle, [](napi_env, void* data, void*) { delete static_cast<Handle<T>*>(data); }, nullptr, &out);
  if (status != napi_ok) delete handle;
  napi(env, status);
  napi(env, napi_type_tag_object(env, out, tag));
  return out;
}

template <typename T>
Handle<T>* unwrapHandle(napi_env env, napi_value v, const napi_type_tag* tag, const char* what) {
  napi_valuetype type;
  napi(env, napi_typeof(env, v, &type));
  bool tagged = false;
  if (type == napi_external) napi(env, napi_check_object_type_tag(env, v, tag, &tagged));
  if (!tagged) throw Failure(std::string("not a ") + what + " handle");
  void* data = nullptr;
  napi(env, napi_get_value_external(env, v, &data));
  return static_cast<Handle<T>*>(data);
}
template <typename T>
std::shared_ptr<T> unwrap(napi_env env, napi_value v, const napi_type_tag* tag, const char* what) {
  auto* handle = unwrapHandle<T>(env, v, tag, what);
  if (!handle->p) throw Failure(std::string(what) + " was released");
  return handle->p;
}
bool isTagged(napi_env env, napi_value v, const napi_type_tag* tag) {
  napi_valuetype type;
  napi(env, napi_typeof(env, v, &type));
  bool tagged = false;
  if (type == napi_external) napi(env, napi_check_object_type_tag(env, v, tag, &tagged));
  return tagged;
}

std::vector<napi_value> args(napi_env env, napi_callback_info info, size_t want) {
  std::vector<napi_value> argv(want);
  size_t argc = want;
  napi(env, napi_get_cb_info(env, info, &argc, argv.data(), nullptr, nullptr));
  if (argc < want) throw Failure("expected " + std::to_string(want) + " arguments");
  return argv;
}
napi_value property(napi_env env, napi_value object, const char* key) {
  napi_value v;
  napi(env, napi_get_named_property(env, object, key, &v));
  return v;
}
std::string string(napi_env env, napi_value v) {
  size_t length = 0;
  napi(env, napi_get_value_string_utf8(env, v, nullptr, 0, &length));
  std::string out(length, '\0');
  napi(env, napi_get_value_string_utf8(env, v, out.data(), length + 1, &length));
  return out;
}
int64_t integer(napi_env env, napi_value v) {
  int64_t out;
  napi(env, napi_get_value_int64(env, v, &out));
  return out;
}
std::vector<std::string> keys(napi_env env, napi_value object) {
  napi_value names;
  napi(env, napi_get_property_names(env, object, &names));
  uint32_t n;
  napi(env, napi_get_array_length(env, names, &n));
  std::vector<std::string> out;
  for (uint32_t i = 0; i < n; i++) {
    napi_value key;
    napi(env, napi_get_element(env, names, i, &key));
    out.push_back(string(env, key));
  }
  return out;
}
std::vector<int64_t> dimsOf(napi_env env, napi_value array, size_t* count) {
  uint32_t n;
  napi(env, napi_get_array_length(env, array, &n));
  std::vector<int64_t> dims(n);
  *count = 1;
  for (uint32_t i = 0; i < n; i++) {
    napi_value d;
    napi(env, napi_get_element(env, array, i, &d));
    dims[i] = integer(env, d);
    if (dims[i] < 0) throw Failure("negative dimension " + std::to_string(dims[i]));
    *count *= static_cast<size_t>(dims[i]);
  }
  return dims;
}

// A typed array's data, checked against a dtype and an element count.
void* typedData(napi_env env, napi_value array, const DType& dtype, size_t count, const std::string& what) {
  bool is = false;
  napi(env, napi_is_typedarray(env, array, &is));
  if (!is) throw Failure(what + ": data is not a typed array");
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi(env, napi_get_typedarray_info(env, array, &type, &length, &data, nullptr, nullptr));
  if (type != dtype.array) throw Failure(what + ": a " + dtype.name + " tensor needs a different typed array");
  if (length != count)
    throw Failure(what + ": data has " + std::to_string(length) + " elements, dims need " + std::to_string(count));
  return data;
}

// A tensor's element type, dims and element count.
const DType& shapeOf(OrtValue* value, std::vector<int64_t>* dims, size_t* count) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  check(ort->GetTensorTypeAndShape(value, &info));
  ONNXTensorElementDataType elem;
  size_t rank = 0;
  OrtStatus* status = ort->GetTensorElementType(info, &elem);
  if (!status) status = ort->GetDimensionsCount(info, &rank);
  dims->assign(rank, 0);
  if (!status) status = ort->GetDimensions(info, dims->data(), rank);
  if (!status) status = ort->GetTensorShapeElementCount(info, count);
  ort->ReleaseTensorTypeAndShapeInfo(info);
  check(status);
  return dtypeByOnnx(elem);
}

napi_value dimsToJs(napi_env env, const std::vector<int64_t>& dims) {
  napi_value out;
  napi(env, napi_create_array_with_length(env, dims.size(), &out));
  for (size_t i = 0; i < dims.size(); i++) {
    napi_value d;
    napi(env, napi_create_int64(env, dims[i], &d));
    napi(env, napi_set_element(env, out, i, d));
  }
  return out;
}

// A host tensor's contents copied into {type, dims, data}.
napi_value toJs(napi_env env, OrtValue* value) {
  std::vector<int64_t> dims;
  size_t count = 0;
  const DType& dtype = shapeOf(value, &dims, &count);
  void* src = nullptr;
  check(ort->GetTensorMutableData(value, &src));
  void* dst = nullptr;
  napi_value buffer, data, out, type;
  napi(env, napi_create_arraybuffer(env, count * dtype.bytes, &dst, &buffer));
  if (count) std::memcpy(dst, src, count * dtype.bytes);
  napi(env, napi_create_typedarray(env, dtype.array, count, buffer, 0, &data));
  napi(env, napi_create_object(env, &out));
  napi(env, napi_create_string_utf8(env, dtype.name, NAPI_AUTO_LENGTH, &type));
  napi(env, napi_set_named_property(env, out, "type", type));
  napi(env, napi_set_named_property(env, out, "dims", dimsToJs(env, dims)));
  napi(env, napi_set_named_property(env, out, "data", data));
  return out;
}

// Runs `session` with `binding` (no N-API: safe off the JS thread).
void runBinding(OrtSession* session, OrtIoBinding* binding, const char* graphId) {
  Owned<OrtRunOptions, releaseRunOptions> options;
  check(ort->CreateRunOptions(&options.p));
  if (graphId) check(ort->AddRunConfigEntry(options.p, "gpu_graph_id", graphId));
  check(ort->RunWithBinding(session, options.p, binding));
}

using Bound = std::vector<std::pair<std::string, std::unique_ptr<Value>>>;
// The outputs of a run binding by name, each an OrtValue of its own that shares the bound memory
// (no N-API: safe off the JS thread).
Bound boundOutputs(OrtIoBinding* binding) {
  OrtAllocator* allocator = nullptr;
  check(ort->GetAllocatorWithDefaultOptions(&allocator));
  char* names = nullptr;
  size_t* lengths = nullptr;
  size_t n = 0;
  check(ort->GetBoundOutputNames(binding, allocator, &names, &lengths, &n));
  OrtValue** values = nullptr;
  size_t m = 0;
  OrtStatus* status = ort->GetBoundOutputValues(binding, allocator, &values, &m);
  Bound out;
  for (size_t i = 0, at = 0; i < n; at += lengths[i], i++) {
    out.emplace_back(std::string(names + at, lengths[i]), std::make_unique<Value>());
    if (values && i < m) out.back().second->p = values[i];
  }
  allocator->Free(allocator, names);
  allocator->Free(allocator, lengths);
  if (values) allocator->Free(allocator, values);
  check(status);
  return out;
}

// An entry point with C++ failures turned into JS errors; all but `init` need `init` done first.
template <napi_value (*F)(napi_env, napi_callback_info), bool NeedsOrt = true>
napi_value guarded(napi_env env, napi_callback_info info) {
  try {
    if (NeedsOrt && !ort) throw Failure("ort-native: init(libonnxruntime.so.1 path) first");
    return F(env, info);
  } catch (const Pending&) {
  } catch (const Failure& e) {
    napi_throw_error(env, "ORT_NATIVE", e.what());
  } catch (const std::exception& e) {
    napi_throw_error(env, "ORT_NATIVE", e.what());
  }
  return nullptr;
}

}  // namespace ortnative
