/**
 * safetensors, read and write, strictly validated. See the README for why this is ours and not the
 * `safetensors` npm package.
 */
export {
  DEFAULT_MAX_HEADER_BYTES,
  type DecodeOptions,
  decodeHeader,
  decodeLayout,
  decodeSafetensors,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsLayout,
  type TensorEntry,
  type TensorView,
} from "./decode.ts";
export {
  DTYPE_BYTES,
  DTYPES,
  type Dtype,
  type DtypeArrays,
  isDtype,
  toFloat16,
  toFloat32,
} from "./dtypes.ts";
export { encodeSafetensors, type TensorInput } from "./encode.ts";
export { SafetensorsError, type SafetensorsErrorCode } from "./errors.ts";
export { openSafetensors, type SafetensorsReader } from "./file.ts";
export { firstNonFinite, type NonFinite } from "./finite.ts";
export { safetensorsHeaderGuard } from "./header-guard.ts";
