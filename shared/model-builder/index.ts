/**
 * The model builder: HF checkpoint → ONNX decoder with LoRA inputs, quantized base weights, and
 * `loracast-model.json` (its format is `../model-format`; docs/architecture.md, "Model artifacts").
 */
export { type Architecture, parseArchitecture } from "./architecture.ts";
export { type BuildOptions, buildArtifacts, transformersJsDtype } from "./artifacts.ts";
export { type Checkpoint, CheckpointError, openCheckpoint } from "./checkpoint.ts";
export {
  dequantize,
  type QuantBits,
  type QuantizedMatrix,
  type QuantLayout,
  quantize,
  quantLayout,
} from "./quantize.ts";
export type { RopeSpec } from "./rope.ts";
export type { BaseQuant } from "./weights.ts";
