// Entry points of the addon; support.h has the helpers and what the addon is.
#include "support.h"

namespace ortnative {

std::shared_ptr<SessionState> sessionOf(napi_env env, napi_value v) {
  return unwrap<SessionState>(env, v, &SESSION_TAG, "session");
}
std::shared_ptr<TensorState> tensorOf(napi_env env, napi_value v) {
  return unwrap<TensorState>(env, v, &TENSOR_TAG, "tensor");
}
bool optionalBool(napi_env env, napi_value object, const char* key, bool fallback) {
  napi_value v = property(env, object, key);
  napi_valuetype type;
  napi(env, napi_typeof(env, v, &type));
  if (type == napi_undefined) return fallback;
  bool out;
  napi(env, napi_get_value_bool(env, v, &out));
  return out;
}
int64_t optionalInt(napi_env env, napi_value object, const char* key, int64_t fallback) {
  napi_value v = property(env, object, key);
  napi_valuetype type;
  napi(env, napi_typeof(env, v, &type));
  return type == napi_undefined ? fallback : integer(env, v);
}
std::vector<std::string> ioNames(OrtSession* session, bool inputs) {
  OrtAllocator* allocator = nullptr;
  check(ort->GetAllocatorWithDefaultOptions(&allocator));
  size_t n = 0;
  check(inputs ? ort->SessionGetInputCount(session, &n) : ort->SessionGetOutputCount(session, &n));
  std::vector<std::string> out;
  for (size_t i = 0; i < n; i++) {
    char* name = nullptr;
    check(inputs ? ort->SessionGetInputName(session, i, allocator, &name)
                 : ort->SessionGetOutputName(session, i, allocator, &name));
    out.emplace_back(name);
    allocator->Free(allocator, name);
  }
  return out;
}
napi_value stringArray(napi_env env, const std::vector<std::string>& items) {
  napi_value out;
  napi(env, napi_create_array_with_length(env, items.size(), &out));
  for (size_t i = 0; i < items.size(); i++) {
    napi_value s;
    napi(env, napi_create_string_utf8(env, items[i].c_str(), items[i].size(), &s));
    napi(env, napi_set_element(env, out, i, s));
  }
  return out;
}

// createSession(model: string path | Uint8Array bytes, {ep, deviceId?, useTf32?, enableCudaGraph?,
// intraOpThreads?}) -> {session, inputNames, outputNames}
napi_value createSession(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 2);
  auto s = std::make_shared<SessionState>();
  std::string ep = string(env, property(env, argv[1], "ep"));
  if (ep != "cpu" && ep != "cuda") throw Failure("ep must be cpu or cuda, got '" + ep + "'");
  s->spec.cuda = ep == "cuda";
  s->spec.deviceId = static_cast<int>(optionalInt(env, argv[1], "deviceId", 0));
  s->spec.useTf32 = optionalBool(env, argv[1], "useTf32", true);
  s->spec.enableCudaGraph = optionalBool(env, argv[1], "enableCudaGraph", false);
  s->spec.intraOpThreads = static_cast<int>(optionalInt(env, argv[1], "intraOpThreads", 0));
  OrtSessionOptions* options = makeOptions(s->spec, s->spec.enableCudaGraph);
  bool bytes = false;
  napi(env, napi_is_typedarray(env, argv[0], &bytes));
  OrtStatus* status;
  if (bytes) {
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi(env, napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr));
    if (type != napi_uint8_array) throw Failure("model bytes must be a Uint8Array");
    status = ort->CreateSessionFromArray(ortEnv, data, length, options, &s->session);
  } else {
    std::string path = string(env, argv[0]);
    status = ort->CreateSession(ortEnv, path.c_str(), options, &s->session);
  }
  ort->ReleaseSessionOptions(options);
  check(status);
  check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &s->hostInfo));
  if (s->spec.cuda) {
    check(ort->CreateMemoryInfo("Cuda", OrtArenaAllocator, s->spec.deviceId, OrtMemTypeDefault, &s->deviceInfo));
    check(ort->CreateAllocator(s->session, s->deviceInfo, &s->deviceAllocator));
  }
  s->inputs = ioNames(s->session, true);
  s->outputs = ioNames(s->session, false);
  napi_value out;
  napi(env, napi_create_object(env, &out));
  napi(env, napi_set_named_property(env, out, "inputNames", stringArray(env, s->inputs)));
  napi(env, napi_set_named_property(env, out, "outputNames", stringArray(env, s->outputs)));
  napi(env, napi_set_named_property(env, out, "session", wrap(env, s, &SESSION_TAG)));
  return out;
}

// allocate(session, type, dims) -> tensor: uninitialised, in the session's device memory (host
// memory on the CPU EP).
napi_value allocate(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 3);
  auto t = std::make_shared<TensorState>();
  t->owner = sessionOf(env, argv[0]);
  t->dtype = &dtypeByName(string(env, argv[1]));
  t->dims = dimsOf(env, argv[2], &t->count);
  OrtAllocator* allocator = t->owner->deviceAllocator;
  if (!allocator) check(ort->GetAllocatorWithDefaultOptions(&allocator));
  check(ort->CreateTensorAsOrtValue(allocator, t->dims.data(), t->dims.size(), t->dtype->onnx, &t->value));
  return wrap(env, t, &TENSOR_TAG);
}

// copy(tensor, host data | null): runs the Identity session from host data into the tensor, or
// from the tensor to host memory (returned as {type, dims, data}).
napi_value copy(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 2);
  auto t = tensorOf(env, argv[0]);
  napi_valuetype type;
  napi(env, napi_typeof(env, argv[1], &type));
  bool upload = type != napi_null;
  OrtSession* identity = t->owner->identity(t->dtype->onnx);
  Owned<OrtIoBinding, releaseBinding> binding;
  check(ort->CreateIoBinding(identity, &binding.p));
  Value host;
  if (upload) {
    void* data = typedData(env, argv[1], *t->dtype, t->count, "upload");
    check(ort->CreateTensorWithDataAsOrtValue(t->owner->hostInfo, data, t->count * t->dtype->bytes, t->dims.data(),
                                              t->dims.size(), t->dtype->onnx, &host.p));
    check(ort->BindInput(binding.p, "x", host.p));
    check(ort->BindOutput(binding.p, "y", t->value));
  } else {
    check(ort->BindInput(binding.p, "x", t->value));
    check(ort->BindOutputToDevice(binding.p, "y", t->owner->hostInfo));
  }
  napi_value out = runBound(env, identity, binding.p, nullptr, upload ? std::vector<std::string>{}
                                                                                  : std::vector<std::string>{"y"});
  return upload ? nullptr : property(env, out, "y");
}

// run(session, feeds: {name: tensor | {type, dims, data}}, outputs: {name: tensor | null},
// graphId: string | null) -> {name: {type, dims, data}} for the outputs bound to host memory.
napi_value run(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 4);
  auto s = sessionOf(env, argv[0]);
  Owned<OrtIoBinding, releaseBinding> binding;
  check(ort->CreateIoBinding(s->session, &binding.p));
  std::vector<std::unique_ptr<Value>> hostFeeds;
  std::vector<std::shared_ptr<TensorState>> held;
  napi_valuetype graphType;
  napi(env, napi_typeof(env, argv[3], &graphType));
  std::string graphId = graphType == napi_null ? (s->spec.enableCudaGraph ? "-1" : "") : string(env, argv[3]);
  bool graphRun = graphType != napi_null;
  for (const auto& name : keys(env, argv[1])) {
    bool known = false;
    for (const auto& input : s->inputs) known = known || input == name;
    if (!known) throw Failure("unknown input '" + name + "'");
    napi_value feed = property(env, argv[1], name.c_str());
    if (isTagged(env, feed, &TENSOR_TAG)) {
      held.push_back(tensorOf(env, feed));
      check(ort->BindInput(binding.p, name.c_str(), held.back()->value));
      continue;
    }
    if (graphRun) throw Failure("input '" + name + "': a CUDA graph run binds only device tensors");
    const DType& dtype = dtypeByName(string(env, property(env, feed, "type")));
    size_t count;
    std::vector<int64_t> dims = dimsOf(env, property(env, feed, "dims"), &count);
    void* data = typedData(env, property(env, feed, "data"), dtype, count, "input '" + name + "'");
    hostFeeds.push_back(std::make_unique<Value>());
    check(ort->CreateTensorWithDataAsOrtValue(s->hostInfo, data, count * dtype.bytes, dims.data(), dims.size(),
                                              dtype.onnx, &hostFeeds.back()->p));
    check(ort->BindInput(binding.p, name.c_str(), hostFeeds.back()->p));
  }
  // ORT finds a missing input only at its first kernel, in a message naming the node.
  auto fed = keys(env, argv[1]);
  for (const auto& input : s->inputs) {
    bool found = false;
    for (const auto& name : fed) found = found || input == name;
    if (!found) throw Failure("missing input '" + input + "'");
  }
  std::vector<std::string> hostOutputs;
  for (const auto& name : keys(env, argv[2])) {
    bool known = false;
    for (const auto& output : s->outputs) known = known || output == name;
    if (!known) throw Failure("unknown output '" + name + "'");
    napi_value target = property(env, argv[2], name.c_str());
    napi_valuetype type;
    napi(env, napi_typeof(env, target, &type));
    if (type == napi_null) {
      if (graphRun) throw Failure("output '" + name + "': a CUDA graph run binds only device tensors");
      check(ort->BindOutputToDevice(binding.p, name.c_str(), s->hostInfo));
      hostOutputs.push_back(name);
    } else {
      held.push_back(tensorOf(env, target));
      check(ort->BindOutput(binding.p, name.c_str(), held.back()->value));
    }
  }
  return runBound(env, s->session, binding.p, graphId.empty() ? nullptr : graphId.c_str(), hostOutputs);
}

// release(handle): frees a session or tensor now (a session's memory goes with its last tensor).
napi_value release(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 1);
  if (isTagged(env, argv[0], &SESSION_TAG))
    unwrapHandle<SessionState>(env, argv[0], &SESSION_TAG, "session")->p.reset();
  else
    unwrapHandle<TensorState>(env, argv[0], &TENSOR_TAG, "tensor")->p.reset();
  return nullptr;
}

napi_value defineExports(napi_env env, napi_value exports, const char* version) {
  napi_value v;
  napi(env, napi_create_string_utf8(env, version, NAPI_AUTO_LENGTH, &v));
  napi_property_descriptor properties[] = {
      {"ortVersion", nullptr, nullptr, nullptr, nullptr, v, napi_enumerable, nullptr},
      {"createSession", nullptr, guarded<createSession>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"allocate", nullptr, guarded<allocate>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"copy", nullptr, guarded<copy>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"run", nullptr, guarded<run>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"release", nullptr, guarded<release>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi(env, napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties));
  return exports;
}
}  // namespace ortnative


NAPI_MODULE_INIT() {
  using namespace ortnative;
  const OrtApiBase* base = OrtGetApiBase();
  ort = base->GetApi(ORT_API_VERSION);
  if (!ort) {
    napi_throw_error(env, "ORT_NATIVE_ABI",
                     (std::string("libonnxruntime ") + base->GetVersionString() + " lacks ORT C API version " +
                      std::to_string(ORT_API_VERSION) + " (the headers this addon was built with)")
                         .c_str());
    return nullptr;
  }
  OrtStatus* status = ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "loracast-ort-native", &ortEnv);
  if (status) {
    napi_throw_error(env, "ORT_NATIVE", ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    return nullptr;
  }
  try {
    return defineExports(env, exports, base->GetVersionString());
  } catch (...) {
    return nullptr;
  }
}
