/**
 * `npm run build:lora-ptx [-- --nvcc=PATH]`: regenerates `lora-kernels.ptx` from `lora-kernels.cu`
 * (`lora-ptx.ts`) with nvcc, by default `/usr/local/cuda/bin/nvcc`. Exits 1 with nvcc's output when
 * it cannot.
 */
import { parseCommandLine } from "../platform/index.ts";
import { buildLoraPtx } from "./lora-ptx.ts";

const { values } = parseCommandLine({
  usage: "npm run build:lora-ptx -- [--nvcc=PATH]",
  about:
    "Compiles shared/ort-native/lora-kernels.cu (the CUDA kernel of the addon's ai.loracast.LoraShrinkExpand) to the committed lora-kernels.ptx, headed by the .cu's sha256.",
  flags: { nvcc: { type: "string", default: "/usr/local/cuda/bin/nvcc", help: "the CUDA compiler" } },
});
const built = buildLoraPtx(values.nvcc);
if (built.ok) console.log(`lora ptx: ${built.value}`);
else {
  console.error(`lora ptx: ${built.error}`);
  process.exitCode = 1;
}
