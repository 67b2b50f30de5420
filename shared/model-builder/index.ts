/**
 * The model builder: HF checkpoint → ONNX decoder with LoRA inputs, quantized base weights, and
 * `loracast-model.json` (its format is `../model-format`; docs/architecture.md, "Model artifacts").
 */
export { parseArchitecture } from "./architecture.ts";
export { type BuildOptions, buildArtifacts, transformersJsDtype } from "./artifacts.ts";
export type { DecoderAttention } from "./decoder-graph.ts";
export { defaultLoraForm, loraDown, loraUp } from "./lora-forms.ts";
export { countDecodeStepNodes } from "./node-count.ts";
export { dequantize, quantize, quantLayout } from "./quantize.ts";
export type { BaseQuant } from "./weights.ts";
