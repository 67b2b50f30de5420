/**
 * The ort-native addon for tests that run the decoder on it (`shared/ort-native`): built once into
 * its default path (`buildOrtNative` does nothing when it is newer than its sources).
 */

import { DEFAULT_ADDON_PATH } from "@loracast/shared/ort-native";
import { buildOrtNative } from "../../../shared/ort-native/build.ts";

/**
 * Builds the addon, and returns `false` when it is ready, or why a suite must skip: only a machine
 * without g++ or onnxruntime-node's Linux library skips (as `shared/ort-native/ort-native.test.ts`
 * does); a failed header fetch or compile throws, so that the suite fails rather than skips.
 */
export function ortNativeSkip(): string | false {
  const built = buildOrtNative(DEFAULT_ADDON_PATH);
  if (built.ok) return false;
  if (built.error.reason === "no-compiler" || built.error.reason === "no-ort")
    return `ort-native not built: ${built.error.message}`;
  throw new Error(`ort-native build failed (${built.error.reason}): ${built.error.message}`);
}
