/**
 * Models made for development and tests: seeded random HF checkpoints and the demo base built to
 * artifacts. (The llama-tiny fixture loaded for decoding is `../tiny-model`, apart, so that this
 * module does not load onnxruntime.)
 */
export { buildDemoModel, DEMO_SEED } from "./demo-model.ts";
export { writeRandomCheckpoint } from "./random-checkpoint.ts";
