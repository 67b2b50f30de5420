/**
 * Loading the addon (`loadOrtNative`): the built file, dlopen'ed once per path, initialised on the
 * `libonnxruntime.so.1` that onnxruntime-node ships; never throws, it says why not instead.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { err, ok, type Result } from "../result/index.ts";
import { providerFailure } from "../runtime/execution-provider.ts";
import { disableOrtTelemetry } from "../runtime/ort-telemetry.ts";
import { type Binding, OrtNativeError } from "./binding.ts";
import { NativeSession, type NativeSessionOptions } from "./native-session.ts";

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

/** The addons `loadOrtNative` has opened, by resolved path. */
const opened = new Map<string, Binding>();

/** The exports of the native addon at `file`; throws the loader's error for anything else. */
function dlopenAddon(file: string): Binding {
  const module: { exports: unknown } = { exports: {} };
  process.dlopen(module, file);
  return module.exports as Binding;
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
    // dlopen, not require: require runs a file of any other extension as JavaScript, so
    // LORACAST_ORT_NATIVE_ADDON would execute whatever it names; dlopen loads a native addon or fails.
    // Once per file, as require's cache did: a second dlopen would register the addon again.
    binding = opened.get(file) ?? dlopenAddon(file);
    opened.set(file, binding);
    ortVersion = binding.init(library);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    // Keep the first line: the loader's (dlerror's) or init's message.
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
