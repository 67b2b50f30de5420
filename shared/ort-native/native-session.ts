/**
 * A session the addon created (`NativeSession`): how it is set up (`NativeSessionOptions`), its
 * device tensors (`allocate`, `upload`) and its runs through an `OrtIoBinding` (`run`, `RunOptions`,
 * `OutputTarget`).
 */
import { asOrtNativeError, type Binding, type BoundTensor, call, OrtNativeError } from "./binding.ts";
import { DeviceTensor, type HostTensor, type NativeDType, type TensorLocation } from "./device-tensor.ts";

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
 * The host memory ORT writes a session's `"host"` outputs to: `pinned` (page-locked, the CUDA EP's
 * pinned allocator: the copy from the device is a DMA transfer) or `pageable` (ordinary memory: the
 * CPU EP, or a cuda session without a pinned allocator).
 */
export type HostOutputMemory = "pinned" | "pageable";

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
