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
// intraOpThreads?, dedicatedThread?}) -> {session, inputNames, outputNames}
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
  s->spec.dedicatedThread = s->spec.enableCudaGraph || optionalBool(env, argv[1], "dedicatedThread", false);
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
    // "host" outputs in pinned memory where the session has the CUDA EP's pinned allocator (asking
    // for it is how to know: CreateAllocator fails without one).
    OrtMemoryInfo* pinned = nullptr;
    check(ort->CreateMemoryInfo("CudaPinned", OrtArenaAllocator, s->spec.deviceId, OrtMemTypeCPUOutput, &pinned));
    OrtAllocator* probe = nullptr;
    if (OrtStatus* missing = ort->CreateAllocator(s->session, pinned, &probe)) {
      ort->ReleaseStatus(missing);
      ort->ReleaseMemoryInfo(pinned);
    } else {
      ort->ReleaseAllocator(probe);
      s->pinnedInfo = pinned;
    }
  }
  if (s->spec.dedicatedThread) s->thread = std::make_unique<RunThread>();
  s->inputs = ioNames(s->session, true);
  for (size_t i = 0; i < s->inputs.size(); i++) s->inputIndex.emplace(s->inputs[i], i);
  s->outputs = ioNames(s->session, false);
  napi_value out;
  napi(env, napi_create_object(env, &out));
  napi(env, napi_set_named_property(env, out, "inputNames", stringArray(env, s->inputs)));
  napi(env, napi_set_named_property(env, out, "outputNames", stringArray(env, s->outputs)));
  napi_value hostOutputs;
  napi(env, napi_create_string_utf8(env, s->pinnedInfo ? "pinned" : "pageable", NAPI_AUTO_LENGTH, &hostOutputs));
  napi(env, napi_set_named_property(env, out, "hostOutputs", hostOutputs));
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
  t->account(env);
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
  runBinding(identity, binding.p, nullptr);
  if (upload) return nullptr;
  Bound outputs = boundOutputs(binding.p);
  if (outputs.size() != 1 || !outputs[0].second->p) throw Failure("download: no output");
  return toJs(env, outputs[0].second->p);
}

// One run in flight: what `run` parsed on the JS thread, what `execute` does on a libuv worker
// thread or the session's own (bind, RunWithBinding: no N-API there), and what `complete` hands back
// on the JS thread.
// It holds the session, the bound device tensors and the host inputs' typed arrays until then, so a
// `release` or a dropped reference during the run frees nothing before it ends; it is deleted on the
// JS thread, where tensors give back their external memory.
struct RunWork {
  enum Target { Host, Device, Given };
  struct Output {
    std::string name;
    Target target;
    OrtValue* given;
  };
  napi_env env = nullptr;
  napi_async_work work = nullptr;          // on libuv's pool
  napi_threadsafe_function done = nullptr;  // on the session's own thread: calls completeRun
  napi_deferred deferred = nullptr;
  std::shared_ptr<SessionState> session;
  std::vector<std::shared_ptr<TensorState>> held;
  std::vector<napi_ref> arrays;
  std::vector<std::unique_ptr<Value>> hostFeeds;  // OrtValues over the typed arrays' memory
  std::vector<std::pair<std::string, OrtValue*>> inputs;
  std::vector<Output> outputs;
  std::string graphId;  // empty: no gpu_graph_id entry
  std::string error;
  Bound results;
  ~RunWork() {
    for (napi_ref r : arrays) napi_delete_reference(env, r);
  }
};

void executeRun(napi_env, void* data) {
  auto* w = static_cast<RunWork*>(data);
  try {
    Owned<OrtIoBinding, releaseBinding> binding;
    check(ort->CreateIoBinding(w->session->session, &binding.p));
    // On CUDA, binding a host input copies it to the device: done here, off the JS thread.
    for (const auto& [name, value] : w->inputs) check(ort->BindInput(binding.p, name.c_str(), value));
    const SessionState& s = *w->session;
    const OrtMemoryInfo* device = s.deviceInfo ? s.deviceInfo : s.hostInfo;
    const OrtMemoryInfo* host = s.pinnedInfo ? s.pinnedInfo : s.hostInfo;
    bool pinned = false;
    for (const auto& o : w->outputs) {
      if (o.target == RunWork::Given) check(ort->BindOutput(binding.p, o.name.c_str(), o.given));
      else check(ort->BindOutputToDevice(binding.p, o.name.c_str(), o.target == RunWork::Device ? device : host));
      pinned = pinned || (o.target == RunWork::Host && s.pinnedInfo);
    }
    runBinding(s.session, binding.p, w->graphId.empty() ? nullptr : w->graphId.c_str());
    // ORT counts pinned memory as the GPU's (host-accessible) and may leave its copy in flight on
    // the stream: wait for it before the JS thread reads the bytes.
    if (pinned) check(ort->SynchronizeBoundOutputs(binding.p));
    w->results = boundOutputs(binding.p);
  } catch (const std::exception& e) {
    w->error = e.what();
  }
}

// {name: {type, dims, data}} for host outputs, {name: {tensor, type, dims}} for "device" ones.
napi_value settleRun(napi_env env, RunWork& w) {
  napi_value out;
  napi(env, napi_create_object(env, &out));
  for (auto& [name, value] : w.results)
    for (const auto& o : w.outputs) {
      if (o.name != name || o.target == RunWork::Given) continue;
      if (o.target == RunWork::Host) {
        napi(env, napi_set_named_property(env, out, name.c_str(), toJs(env, value->p)));
        continue;
      }
      auto t = std::make_shared<TensorState>();
      t->owner = w.session;
      t->dtype = &shapeOf(value->p, &t->dims, &t->count);
      t->value = value->p;
      value->p = nullptr;
      t->account(env);
      napi_value entry, type;
      napi(env, napi_create_object(env, &entry));
      napi(env, napi_create_string_utf8(env, t->dtype->name, NAPI_AUTO_LENGTH, &type));
      napi(env, napi_set_named_property(env, entry, "type", type));
      napi(env, napi_set_named_property(env, entry, "dims", dimsToJs(env, t->dims)));
      napi(env, napi_set_named_property(env, entry, "tensor", wrap(env, t, &TENSOR_TAG)));
      napi(env, napi_set_named_property(env, out, name.c_str(), entry));
    }
  return out;
}

void rejectRun(napi_env env, napi_deferred deferred, const std::string& message) {
  napi_value code, text, error;
  napi_create_string_utf8(env, "ORT_NATIVE", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message.c_str(), message.size(), &text);
  napi_create_error(env, code, text, &error);
  napi_reject_deferred(env, deferred, error);
}

void completeRun(napi_env env, napi_status status, void* data) {
  std::unique_ptr<RunWork> w(static_cast<RunWork*>(data));
  if (w->work) napi_delete_async_work(env, w->work);
  std::string error = status == napi_cancelled ? "run cancelled" : w->error;
  if (error.empty()) try {
      napi_resolve_deferred(env, w->deferred, settleRun(env, *w));
      return;
    } catch (const Pending&) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_reject_deferred(env, w->deferred, e);
      return;
    } catch (const std::exception& e) {
      error = e.what();
    }
  rejectRun(env, w->deferred, error);
}

// On the session's own thread: the run, then completeRun on the JS thread through a thread-safe
// function (which keeps the event loop alive meanwhile, as queued async work does).
napi_value queueOnThread(napi_env env, std::unique_ptr<RunWork> w, napi_value resource) {
  napi(env, napi_create_threadsafe_function(
                env, nullptr, nullptr, resource, 0, 1, nullptr, nullptr, nullptr,
                [](napi_env env, napi_value, void*, void* data) {
                  // No env: Node is tearing the environment down; nothing is left to settle.
                  if (env) completeRun(env, napi_ok, data);
                },
                &w->done));
  napi_value promise;
  napi_status created = napi_create_promise(env, &w->deferred, &promise);
  if (created != napi_ok) {
    napi_release_threadsafe_function(w->done, napi_tsfn_abort);
    napi(env, created);
  }
  RunWork* work = w.release();
  napi_threadsafe_function done = work->done;
  // `work` may be deleted on the JS thread as soon as it is handed over: only `done` is used after.
  work->session->thread->post([work, done] {
    executeRun(nullptr, work);
    napi_call_threadsafe_function(done, work, napi_tsfn_blocking);
    napi_release_threadsafe_function(done, napi_tsfn_release);
  });
  return promise;
}

// run(session, feeds: {name: tensor | {type, dims, data}}, outputs: {name: tensor | "host" |
// "device"}, graphId: string | null) -> Promise<{name: host tensor | {tensor, type, dims}}> for the
// outputs not given as tensors. Names, dtypes and data lengths are checked here, synchronously;
// ORT's own checks reject the promise.
napi_value run(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 4);
  auto w = std::make_unique<RunWork>();
  w->env = env;
  w->session = sessionOf(env, argv[0]);
  const SessionState& s = *w->session;
  napi_valuetype graphType;
  napi(env, napi_typeof(env, argv[3], &graphType));
  bool graphRun = graphType != napi_null;
  w->graphId = graphRun ? string(env, argv[3]) : (s.spec.enableCudaGraph ? "-1" : "");
  auto fed = keys(env, argv[1]);
  std::vector<bool> given(s.inputs.size(), false);
  for (const auto& name : fed) {
    auto index = s.inputIndex.find(name);
    if (index == s.inputIndex.end()) throw Failure("unknown input '" + name + "'");
    given[index->second] = true;
    napi_value feed = property(env, argv[1], name.c_str());
    if (isTagged(env, feed, &TENSOR_TAG)) {
      w->held.push_back(tensorOf(env, feed));
      w->inputs.emplace_back(name, w->held.back()->value);
      continue;
    }
    // A host tensor in a graph run: only for inputs a kernel reads on the host (GroupQueryAttention's
    // total_sequence_length, a CPU input of its CUDA kernel), which the capture run reads and
    // replays bake in; a host input copied to the device would be a copy inside the capture.
    const DType& dtype = dtypeByName(string(env, property(env, feed, "type")));
    size_t count;
    std::vector<int64_t> dims = dimsOf(env, property(env, feed, "dims"), &count);
    napi_value array = property(env, feed, "data");
    void* data = typedData(env, array, dtype, count, "input '" + name + "'");
    w->arrays.emplace_back();
    napi(env, napi_create_reference(env, array, 1, &w->arrays.back()));
    w->hostFeeds.push_back(std::make_unique<Value>());
    check(ort->CreateTensorWithDataAsOrtValue(s.hostInfo, data, count * dtype.bytes, dims.data(), dims.size(),
                                              dtype.onnx, &w->hostFeeds.back()->p));
    w->inputs.emplace_back(name, w->hostFeeds.back()->p);
  }
  // ORT finds a missing input only at its first kernel, in a message naming the node.
  for (size_t i = 0; i < s.inputs.size(); i++)
    if (!given[i]) throw Failure("missing input '" + s.inputs[i] + "'");
  for (const auto& name : keys(env, argv[2])) {
    bool known = false;
    for (const auto& output : s.outputs) known = known || output == name;
    if (!known) throw Failure("unknown output '" + name + "'");
    napi_value target = property(env, argv[2], name.c_str());
    if (isTagged(env, target, &TENSOR_TAG)) {
      w->held.push_back(tensorOf(env, target));
      w->outputs.push_back({name, RunWork::Given, w->held.back()->value});
      continue;
    }
    std::string where = string(env, target);
    if (where != "host" && where != "device")
      throw Failure("output '" + name + "': \"host\", \"device\" or a device tensor, got '" + where + "'");
    if (graphRun) throw Failure("output '" + name + "': a CUDA graph run binds only given device tensors");
    w->outputs.push_back({name, where == "host" ? RunWork::Host : RunWork::Device, nullptr});
  }
  napi_value resource, promise;
  napi(env, napi_create_string_utf8(env, "ortNativeRun", NAPI_AUTO_LENGTH, &resource));
  if (s.thread) return queueOnThread(env, std::move(w), resource);
  napi(env, napi_create_async_work(env, nullptr, resource, executeRun, completeRun, w.get(), &w->work));
  napi_status created = napi_create_promise(env, &w->deferred, &promise);
  if (created == napi_ok) created = napi_queue_async_work(env, w->work);
  if (created != napi_ok) {
    napi_delete_async_work(env, w->work);
    if (w->deferred) rejectRun(env, w->deferred, "could not queue the run");
    napi(env, created);
  }
  w.release();
  return promise;
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

// init(path of libonnxruntime.so.1) -> its version. Loads the library onnxruntime-node ships (the
// same file it loads: one copy per process whichever comes first) and takes its C API by name. The
// addon does not link against it: ORT versions its symbols per release (OrtGetApiBase@VERS_1.30.0),
// so an addon linked against one release's library would not load with another's, while one built
// from ORT 1.29.0's headers runs on any release whose C API includes version ORT_API_VERSION.
napi_value init(napi_env env, napi_callback_info info) {
  auto argv = args(env, info, 1);
  static std::string version;
  napi_value out;
  if (!ort) {
    std::string path = string(env, argv[0]);
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed: ORT stays for the process
    if (!library) throw Failure(std::string("dlopen: ") + dlerror());
    auto getApiBase = reinterpret_cast<const OrtApiBase* (*)()>(dlsym(library, "OrtGetApiBase"));
    if (!getApiBase) throw Failure(path + " has no OrtGetApiBase");
    const OrtApiBase* base = getApiBase();
    const OrtApi* api = base->GetApi(ORT_API_VERSION);
    if (!api) {
      std::string message = std::string("libonnxruntime ") + base->GetVersionString() + " lacks ORT C API version " +
                            std::to_string(ORT_API_VERSION) + " (the headers this addon was built with)";
      napi_throw_error(env, "ORT_NATIVE_ABI", message.c_str());
      return nullptr;
    }
    OrtStatus* status = api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "loracast-ort-native", &ortEnv);
    if (status) {
      std::string message = api->GetErrorMessage(status);
      api->ReleaseStatus(status);
      throw Failure(message);
    }
    ort = api;
    version = base->GetVersionString();
  }
  napi(env, napi_create_string_utf8(env, version.c_str(), version.size(), &out));
  return out;
}

napi_value defineExports(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"init", nullptr, guarded<init, false>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
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
  try {
    return ortnative::defineExports(env, exports);
  } catch (...) {
    return nullptr;
  }
}
