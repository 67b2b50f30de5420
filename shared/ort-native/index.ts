/**
 * `ort-native`: loracast's N-API addon over ONNX Runtime's C API (`addon.cc`, `support.h`), for what
 * onnxruntime-node 1.29.0 does not expose (issue 18, item 6):
 * - CUDA EP options beyond `deviceId`: `use_tf32`, `enable_cuda_graph`;
 * - device-resident tensors (`NativeSession.allocate`/`upload`): memory of the session's own
 *   allocator (CUDA memory on `cuda`), filled from host data once and bound to any number of runs,
 *   reported to V8 as external memory while they live;
 * - asynchronous runs through `OrtIoBinding` (`NativeSession.run`, on a libuv worker thread):
 *   inputs are host tensors or device tensors; outputs come back as host tensors, go into given
 *   device tensors, or stay where ORT put them in the session's device memory (`"device"`: dims
 *   not known in advance, e.g. the KV cache's `present.*`);
 * - CUDA graph capture and replay (run option `gpu_graph_id`, `RunOptions.graphId`).
 *
 * It is built from the npm registry alone (`build.ts`, `npm run build:ort-native`) and loads, at
 * run time, the `libonnxruntime.so.1` that onnxruntime-node ships, which both then share in one
 * process: one build runs on ORT 1.29 and 1.30.
 * `loadOrtNative` never throws: where the addon is not built or does not load, callers keep the
 * stock binding. The engine's seam: `DecoderSession` (`shared/runtime/decoder-session.ts`) creates
 * a `NativeSession` when `loadOrtNative()` is ok and the EP is `cuda`, uploads each adapter's LoRA
 * factors once (`upload`), keeps the KV cache in device tensors (`"device"` outputs bound as the
 * next step's inputs), and falls back to `ort.InferenceSession` otherwise.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { err, ok, type Result } from "../result/index.ts";
import { providerFailure } from "../runtime/execution-provider.ts";
import { disableOrtTelemetry } from "../runtime/ort-telemetry.ts";

export {
  LORA_SHAPES,
  type LoraOperands,
  loraChainModel,
  loraFeeds,
  loraReference,
  loraRelativeError,
  randomLoraOperands,
} from "./lora-op.ts";

/** Element types the addon moves, named as onnxruntime-common's `Tensor.type`. */
export type NativeDType = "float32" | "float16" | "int32" | "int64" | "uint8" | "int8" | "bool";

/**
 * A tensor in host memory: row-major `data` of `dims` (product = `data.length`), typed by `type`:
 * float32 → Float32Array, float16 → Uint16Array (IEEE half bits), int32 → Int32Array, int64 →
 * BigInt64Array, uint8 and bool → Uint8Array, int8 → Int8Array. An onnxruntime-node `ort.Tensor`
 * of those types is one.
 */
export interface HostTensor {
  type: NativeDType;
  dims: readonly number[];
  data: Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;
}

/** How `OrtNative.createSession` sets up a session; the CUDA options are refused on `cpu`. */
export interface NativeSessionOptions {
  /** `cpu` (MLAS) or `cuda` (ORT's CUDA EP, loaded from beside `libonnxruntime.so.1`). */
  ep: "cpu" | "cuda";
  /** CUDA provider option `device_id`; default 0. */
  deviceId?: number;
  /** CUDA provider option `use_tf32` (TF32 tensor cores for float32 GEMMs); ORT's default true. */
  useTf32?: boolean;
  /**
   * CUDA provider option `enable_cuda_graph`. Graph runs (`RunOptions.graphId`) must bind every
   * input and output to device tensors whose shapes and addresses never change (host tensors only
   * where a kernel reads the input on the host: `RunOptions.graphId`); other runs of such
   * a session pass `gpu_graph_id=-1` (no capture). Default false.
   */
  enableCudaGraph?: boolean;
  /** ORT's intra-op thread count; ORT's default (one per core) when absent. */
  intraOpThreads?: number;
  /**
   * Runs go, in order, to one OS thread of the session's own instead of libuv's thread pool (where
   * several may run at once, and which `fs`, `dns` and `crypto` share: 4 threads unless
   * `UV_THREADPOOL_SIZE` says otherwise). Suits a session whose runs are sequential anyway, like a
   * decoder's steps. Always so with `enableCudaGraph`: the CUDA EP keeps captured graphs per OS
   * thread (`PerThreadContext` in ORT's `cuda_execution_provider.h`). Default false.
   */
  dedicatedThread?: boolean;
}

/** Per-run options of `NativeSession.run`. */
export interface RunOptions {
  /**
   * ORT's run option `gpu_graph_id` (a positive integer): the first run with an id captures a CUDA
   * graph, later ones replay it. Needs a session with `enableCudaGraph` (`run` throws
   * `OrtNativeError` otherwise), outputs bound to given device tensors, and device tensors for
   * every input a kernel reads on the device. A host tensor is for an input a kernel reads on the
   * host (GroupQueryAttention's `total_sequence_length`): the capture reads it, replays bake in
   * that value.
   */
  graphId?: number;
}

/**
 * An error from the addon or ORT: the model's own checks (`Unexpected input data type`, `Got
 * invalid dimensions for input`, `Missing Input`), the addon's (unknown input or output name, data
 * whose typed array or length does not fit `type` and `dims`, a released handle), a session or
 * provider that cannot be created. `message` is ORT's or the addon's text.
 */
export class OrtNativeError extends Error {
  override readonly name = "OrtNativeError";
}

/** A device output as the addon returns it: a new tensor handle and what ORT produced. */
interface BoundTensor {
  tensor: object;
  type: NativeDType;
  dims: number[];
}

/** The addon's own exports (`addon.cc`: `defineExports`); handles are opaque externals. */
interface Binding {
  /** Loads the `libonnxruntime.so.1` at the path once (later calls keep it); returns its version. */
  init(library: string): string;
  createSession(
    model: string | Uint8Array,
    options: NativeSessionOptions,
  ): { session: object; inputNames: string[]; outputNames: string[]; hostOutputs: HostOutputMemory };
  allocate(session: object, type: NativeDType, dims: readonly number[]): object;
  copy(tensor: object, data: HostTensor["data"] | null): HostTensor | undefined;
  run(
    session: object,
    feeds: Record<string, object | HostTensor>,
    outputs: Record<string, object | "host" | "device">,
    graphId: string | null,
  ): Promise<Record<string, HostTensor | BoundTensor>>;
  release(handle: object): void;
}

const asOrtNativeError = (e: unknown) =>
  e instanceof OrtNativeError ? e : new OrtNativeError(e instanceof Error ? e.message : String(e));

function call<T>(body: () => T): T {
  try {
    return body();
  } catch (e) {
    throw asOrtNativeError(e);
  }
}

/** Bytes per element of each `NativeDType`. */
const ELEMENT_BYTES: Record<NativeDType, number> = {
  float32: 4,
  float16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  int8: 1,
  bool: 1,
};

/**
 * The host memory ORT writes a session's `"host"` outputs to: `pinned` (page-locked, the CUDA EP's
 * pinned allocator: the copy from the device is a DMA transfer) or `pageable` (ordinary memory: the
 * CPU EP, or a cuda session without a pinned allocator).
 */
export type HostOutputMemory = "pinned" | "pageable";

/** Where a session's device tensors live: its EP's memory (`cpu`: host memory). */
export type TensorLocation = NativeSessionOptions["ep"];

/**
 * A tensor in the memory of the session that allocated it or whose run produced it (CUDA memory
 * on `cuda`, host memory on `cpu`). It keeps that session's allocator alive until released or
 * collected; its bytes are reported to V8 as external memory meanwhile, so dropped tensors are
 * collected in time.
 */
export class DeviceTensor {
  /** @internal */
  constructor(
    private readonly binding: Binding,
    readonly handle: object,
    readonly type: NativeDType,
    readonly dims: readonly number[],
    /** The memory it lives in: its session's EP. */
    readonly location: TensorLocation,
  ) {}

  /** Its size in bytes (element count × element size). */
  get bytes(): number {
    return this.dims.reduce((n, d) => n * d, ELEMENT_BYTES[this.type]);
  }

  /**
   * Copies `data` (the typed array `HostTensor` names for `type`, `dims`' element count) in,
   * synchronously (an Identity run on the JS thread). Throws `OrtNativeError`.
   */
  upload(data: HostTensor["data"]): void {
    call(() => this.binding.copy(this.handle, data));
  }

  /** A host copy of the tensor's contents, made synchronously. Throws `OrtNativeError`. */
  download(): HostTensor {
    return call(() => this.binding.copy(this.handle, null)) as HostTensor;
  }

  /**
   * Frees the memory now (otherwise at garbage collection), or when the last run that binds it
   * ends; using the tensor later throws `OrtNativeError`.
   */
  release(): void {
    call(() => this.binding.release(this.handle));
  }
}

/**
 * Where `NativeSession.run` puts an output: `"host"` (a `HostTensor`; on `cuda` ORT copies it out
 * through page-locked memory, the CUDA EP's pinned allocator, then into the typed array), `"device"` (a new
 * `DeviceTensor` in the session's memory, of the dims ORT produced), or a given `DeviceTensor` of
 * the output's exact type and dims (filled in place).
 */
export type OutputTarget = "host" | "device" | DeviceTensor;

/** What `run` returns for an output of `target`. */
export type Fetched<T extends OutputTarget> = T extends "host" ? HostTensor : DeviceTensor;

/** An ORT session created by the addon; its input and output names are the model's. */
export class NativeSession {
  /** @internal */
  constructor(
    private readonly binding: Binding,
    private readonly handle: object,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    /** The EP it runs on: where its device tensors live. */
    readonly ep: TensorLocation,
    /** The CUDA device (`NativeSessionOptions.deviceId`); 0 on `cpu`. */
    readonly deviceId: number,
    /** Created with `enableCudaGraph`: the only sessions `RunOptions.graphId` means anything to. */
    private readonly cudaGraphs: boolean,
    /** Where its `"host"` outputs are copied out to (`HostOutputMemory`). */
    readonly hostOutputs: HostOutputMemory,
  ) {}

  /** An uninitialised tensor of `type` and `dims` in the session's device memory. */
  allocate(type: NativeDType, dims: readonly number[]): DeviceTensor {
    const tensor = call(() => this.binding.allocate(this.handle, type, dims));
    return new DeviceTensor(this.binding, tensor, type, [...dims], this.ep);
  }

  /** `host` copied into a new device tensor of its type and dims. */
  upload(host: HostTensor): DeviceTensor {
    const tensor = this.allocate(host.type, host.dims);
    tensor.upload(host.data);
    return tensor;
  }

  /**
   * One run through an `OrtIoBinding`, off the JS thread (ORT's `RunWithBinding`, and on `cuda`
   * the host inputs' copies to the device): the event loop keeps turning meanwhile. Several runs of
   * one session may be in flight: on libuv's thread pool they run at once (ORT's `Run` is
   * thread-safe); with `dedicatedThread` (or `enableCudaGraph`) they run one after another, in the
   * order of the calls.
   *
   * `feeds`: every input the model needs, as host tensors (read by ORT during the run: their typed
   * arrays are kept alive and must stay unmodified until the promise settles) or device tensors
   * (bound in place, no copy). `outputs`: which outputs to fetch and where (`OutputTarget`);
   * absent: all to the host. Resolves to the fetched outputs by name; device tensors and the
   * session bound to a run stay alive until it ends, even if released meanwhile. Rejects with
   * `OrtNativeError` (see there).
   */
  run(
    feeds: Readonly<Record<string, HostTensor | DeviceTensor>>,
    outputs?: undefined,
    options?: RunOptions,
  ): Promise<Record<string, HostTensor>>;
  run<O extends Readonly<Record<string, OutputTarget>>>(
    feeds: Readonly<Record<string, HostTensor | DeviceTensor>>,
    outputs: O,
    options?: RunOptions,
  ): Promise<{ -readonly [K in keyof O]: Fetched<O[K]> }>;
  async run(
    feeds: Readonly<Record<string, HostTensor | DeviceTensor>>,
    outputs?: Readonly<Record<string, OutputTarget>>,
    options: RunOptions = {},
  ): Promise<Record<string, HostTensor | DeviceTensor>> {
    const bound: Record<string, object | HostTensor> = {};
    for (const [name, feed] of Object.entries(feeds))
      bound[name] = feed instanceof DeviceTensor ? feed.handle : feed;
    const targets: Record<string, object | "host" | "device"> = {};
    for (const name of outputs ? Object.keys(outputs) : this.outputNames) {
      const target = outputs?.[name] ?? "host";
      targets[name] = target instanceof DeviceTensor ? target.handle : target;
    }
    const graphId = options.graphId;
    if (graphId !== undefined && !(Number.isInteger(graphId) && graphId > 0))
      throw new OrtNativeError(`graphId must be a positive integer, got ${graphId}`);
    if (graphId !== undefined && !this.cudaGraphs)
      throw new OrtNativeError("graphId needs a cuda session created with enableCudaGraph");
    let got: Record<string, HostTensor | BoundTensor>;
    try {
      got = await this.binding.run(
        this.handle,
        bound,
        targets,
        graphId === undefined ? null : String(graphId),
      );
    } catch (e) {
      throw asOrtNativeError(e);
    }
    const result: Record<string, HostTensor | DeviceTensor> = {};
    for (const [name, target] of Object.entries(outputs ?? {}))
      if (target instanceof DeviceTensor) result[name] = target;
    for (const [name, out] of Object.entries(got))
      result[name] =
        "tensor" in out ? new DeviceTensor(this.binding, out.tensor, out.type, out.dims, this.ep) : out;
    return result;
  }

  /**
   * Frees the session now (its memory goes once its last tensor is released and its last run
   * ended); using it later throws `OrtNativeError`.
   */
  release(): void {
    call(() => this.binding.release(this.handle));
  }
}

/** The loaded addon. */
export interface OrtNative {
  /** The version of the `libonnxruntime` it runs on (onnxruntime-node's). */
  ortVersion: string;
  /**
   * A session over the ONNX model at `model` (a path, or its bytes). Throws `ExecutionProviderError`
   * (`shared/runtime/execution-provider.ts`) when the CUDA provider's library is missing or does
   * not load, and `OrtNativeError` for a bad model (ORT's message) or CUDA options on a cpu session.
   */
  createSession(model: string | Uint8Array, options: NativeSessionOptions): NativeSession;
}

/** Why `loadOrtNative` returned no addon. */
export interface OrtNativeUnavailable {
  reason: "not-built" | "load-failed" | "abi-mismatch";
  /** Human-readable detail: the path looked at, the loader's or ORT's message. */
  message: string;
}

/** Where `npm run build:ort-native` puts the addon (git-ignored). */
export const DEFAULT_ADDON_PATH = join(import.meta.dirname, "build", "ort-native.node");

/**
 * The addon at `path` (default: `LORACAST_ORT_NATIVE_ADDON`, else `DEFAULT_ADDON_PATH`), on the
 * `libonnxruntime.so.1` of the onnxruntime-node that resolves from here, or why not: `not-built` (no
 * file), `load-failed` (not a Node addon, no onnxruntime-node or no library of its for this
 * platform), `abi-mismatch` (built against an ORT C API the library lacks). Never throws.
 */
export function loadOrtNative(path?: string): Result<OrtNative, OrtNativeUnavailable> {
  const file = resolve(path ?? process.env.LORACAST_ORT_NATIVE_ADDON ?? DEFAULT_ADDON_PATH);
  if (!existsSync(file))
    return err({ reason: "not-built", message: `${file} does not exist (npm run build:ort-native)` });
  const require = createRequire(import.meta.url);
  let library: string;
  try {
    const stock = dirname(require.resolve("onnxruntime-node/package.json"));
    library = join(stock, "bin", "napi-v6", process.platform, process.arch, "libonnxruntime.so.1");
  } catch (e) {
    return err({ reason: "load-failed", message: `onnxruntime-node not found: ${String(e)}` });
  }
  // The addon creates ORT's environment in init, if onnxruntime-node has not yet.
  disableOrtTelemetry();
  let binding: Binding;
  let ortVersion: string;
  try {
    binding = require(file) as Binding;
    ortVersion = binding.init(library);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    // Node's loader appends a require stack: the first line says it.
    const message = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    return err({
      reason: code === "ORT_NATIVE_ABI" ? "abi-mismatch" : "load-failed",
      message: `${file}: ${message}`,
    });
  }
  return ok({
    ortVersion,
    createSession(model, options) {
      const cudaOnly = (["deviceId", "useTf32", "enableCudaGraph"] as const).filter(
        (k) => options[k] !== undefined,
      );
      if (options.ep === "cpu" && cudaOnly.length > 0)
        throw new OrtNativeError(`${cudaOnly.join(", ")}: CUDA EP options, given for a cpu session`);
      let created: ReturnType<Binding["createSession"]>;
      try {
        created = binding.createSession(model, options);
      } catch (e) {
        throw (
          providerFailure(e, [options.ep]) ?? new OrtNativeError(e instanceof Error ? e.message : String(e))
        );
      }
      return new NativeSession(
        binding,
        created.session,
        created.inputNames,
        created.outputNames,
        options.ep,
        options.deviceId ?? 0,
        options.enableCudaGraph === true,
        created.hostOutputs,
      );
    },
  });
}
