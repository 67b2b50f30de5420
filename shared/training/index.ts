/** Training LoRA factors over a frozen base: the training-graph session, parameters, batches. */
export { packBatch, type Sample } from "./batch.ts";
export { LoraParams } from "./lora-params.ts";
export { ALLOCATOR_OVERHEAD, activationBytes, microBatchSize } from "./memory.ts";
export { type TrainBatch, TrainingSession } from "./training-session.ts";
