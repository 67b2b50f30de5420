/**
 * The model builder: HF checkpoint → ONNX decoder with LoRA inputs, quantized base weights, and
 * `loracast-model.json` (design §2).
 */
export { type Architecture, parseArchitecture } from "./architecture.ts";
export { type BuildOptions, buildArtifacts, transformersJsDtype } from "./artifacts.ts";
export { type Checkpoint, CheckpointError, openCheckpoint } from "./checkpoint.ts";
export { IO, TRAIN_IO } from "./io-names.ts";
export {
  APPEND_FILE,
  DATA_FILE,
  MODEL_FILE,
  MODEL_MANIFEST,
  ModelArtifactsError,
  type ModelManifest,
  modelManifestSchema,
  readModelManifest,
  TRAINING_FILE,
} from "./model-manifest.ts";
export {
  dequantize,
  type QuantBits,
  type QuantizedMatrix,
  type QuantLayout,
  quantize,
  quantLayout,
} from "./quantize.ts";
export { writeRandomCheckpoint } from "./random-checkpoint.ts";
export type { RopeSpec } from "./rope.ts";
export type { BaseQuant } from "./weights.ts";
