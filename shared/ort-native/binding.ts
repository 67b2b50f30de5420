/**
 * The addon's raw exports (`addon.cc`: `defineExports`) as this package calls them, and the one
 * error type every failure of the addon or ORT reaches callers as (`OrtNativeError`).
 */
import type { HostTensor, NativeDType } from "./device-tensor.ts";
import type { HostOutputMemory, NativeSessionOptions } from "./native-session.ts";

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
export interface BoundTensor {
  tensor: object;
  type: NativeDType;
  dims: number[];
}

/** The addon's own exports (`addon.cc`: `defineExports`); handles are opaque externals. */
export interface Binding {
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

/** `e` as an `OrtNativeError` (itself if it is one; else one with its message). */
export const asOrtNativeError = (e: unknown) =>
  e instanceof OrtNativeError ? e : new OrtNativeError(e instanceof Error ? e.message : String(e));

/** `body()`, whose throw (the addon's) is rethrown as an `OrtNativeError` (`asOrtNativeError`). */
export function call<T>(body: () => T): T {
  try {
    return body();
  } catch (e) {
    throw asOrtNativeError(e);
  }
}
