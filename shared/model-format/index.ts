/**
 * The built model's format, apart from the compiler that writes it: the ONNX graphs' input and
 * output names, the artifacts' file names, and `loracast-model.json` (schema and reader). The model
 * builder writes it; the runtime and training read it, without loading the builder.
 */
export { IO, TRAIN_IO } from "./io-names.ts";
export {
  APPEND_FILE,
  BASE_APPEND_FILE,
  BASE_FILE,
  DATA_FILE,
  type KvCacheDtype,
  kvCacheDtypeSchema,
  LORA_SHRINK_EXPAND,
  type LoraALayout,
  type LoraForm,
  type LoraOp,
  loraALayout,
  loraFormSchema,
  loraOpSchema,
  MATMUL_NBITS_LORA,
  MODEL_FILE,
  MODEL_MANIFEST,
  ModelArtifactsError,
  type ModelManifest,
  readModelManifest,
  TRAINING_FILE,
} from "./model-manifest.ts";
