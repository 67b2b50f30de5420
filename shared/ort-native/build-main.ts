/**
 * `npm run build:ort-native [-- --out=PATH]`: builds the addon (`build.ts`) into PATH, by default
 * `DEFAULT_ADDON_PATH` (shared/ort-native/build/ort-native.node, git-ignored). Exits 1 with the
 * reason when it cannot.
 */
import { parseCommandLine } from "../platform/index.ts";
import { buildOrtNative } from "./build.ts";
import { DEFAULT_ADDON_PATH } from "./index.ts";

const { values } = parseCommandLine({
  usage: "npm run build:ort-native -- [--out=PATH]",
  about:
    "Builds loracast's ort-native addon (an N-API addon over ONNX Runtime's C API) with g++, against headers fetched from the npm registry. The decoders use it on cuda (docs/architecture.md).",
  flags: { out: { type: "string", default: DEFAULT_ADDON_PATH, help: "where to write the addon" } },
});
const built = buildOrtNative(values.out);
if (built.ok) console.log(`ort-native: ${built.value}`);
else {
  console.error(`ort-native: ${built.error.reason}: ${built.error.message}`);
  process.exitCode = 1;
}
