/** Training on LoRA factors: the training-graph session, optimizer, losses. */
export { type TrainBatch, TrainingSession } from "./training-session.ts";
