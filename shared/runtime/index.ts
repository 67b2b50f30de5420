/**
 * Running built model artifacts with onnxruntime-node (or, on CUDA, loracast's ort-native addon):
 * one session, adapters as feeds.
 */
export { BaseGraphMissingError, type BaseGraphMode, baseGraphSchema } from "./base-graph.ts";
export { DecoderSession } from "./decoder-session.ts";
export { bytesPerToken, type StepCopy } from "./device-copies.ts";
export { Engine } from "./engine.ts";
export {
  type ExecutionProvider,
  ExecutionProviderError,
  executionProviderSchema,
} from "./execution-provider.ts";
export {
  type FinishReason,
  type GenerationRequest,
  NonFiniteLogitsError,
} from "./generation.ts";
export { greedyDecode, sequenceLogprobs } from "./greedy.ts";
export { allFinite, argmaxRow, logProbAt } from "./logits.ts";
export { invalidProcessorParams, LogitsProcessors, type StopConditions } from "./logits-processors.ts";
export { adapterFeeds, baseFeeds, isBaseFeeds, type LoraFeeds, packLoraFeeds } from "./lora-feeds.ts";
export { type OrtBackend, OrtBackendError, ortBackendSchema } from "./native-decoder.ts";
export { sessionsCreated } from "./open-runners.ts";
export { disableOrtTelemetry } from "./ort-telemetry.ts";
export {
  GREEDY,
  type SampledToken,
  type SamplingParams,
  sampleToken,
} from "./sampling.ts";
export { createSession, type OrtSessionOptions } from "./session-options.ts";
export type { StepInput } from "./step-feeds.ts";
