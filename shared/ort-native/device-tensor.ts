/**
 * Tensors as the addon moves them: `HostTensor` (typed arrays in host memory, onnxruntime-node's
 * `ort.Tensor` shape) and `DeviceTensor` (a handle to memory of a session's allocator: CUDA memory
 * on `cuda`), with their element types (`NativeDType`).
 */
import { type Binding, call } from "./binding.ts";
import type { NativeSessionOptions } from "./native-session.ts";

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
