/**
 * `npm run build:ort-native [-- --out=PATH]`: builds the addon (`build.ts`) into PATH, by default
 * `DEFAULT_ADDON_PATH` (shared/ort-native/build/ort-native.node, git-ignored). Exits 1 with the
 * reason when it cannot.
 */
import { parseArgs } from "node:util";
import { buildOrtNative } from "./build.ts";
import { DEFAULT_ADDON_PATH } from "./index.ts";

const { values } = parseArgs({ options: { out: { type: "string", default: DEFAULT_ADDON_PATH } } });
const built = buildOrtNative(values.out);
if (built.ok) console.log(`ort-native: ${built.value}`);
else {
  console.error(`ort-native: ${built.error.reason}: ${built.error.message}`);
  process.exitCode = 1;
}
