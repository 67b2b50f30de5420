/**
 * safetensors, read and write, strictly validated. See the README for why this is ours and not the
 * `safetensors` npm package.
 */
export {
  decodeHeader,
  decodeSafetensors,
  type SafetensorsFile,
  type TensorEntry,
  type TensorView,
} from "./decode.ts";
export {
  toFloat16,
  toFloat32,
} from "./dtypes.ts";
export { encodeSafetensors, type TensorInput } from "./encode.ts";
export { SafetensorsError } from "./errors.ts";
export { openSafetensors, type SafetensorsReader } from "./file.ts";
export { type FloatScan, firstNonFinite, scanFloats } from "./finite.ts";
export { safetensorsHeaderGuard } from "./header-guard.ts";
export { scanFloatsConcurrent } from "./scan-thread.ts";
