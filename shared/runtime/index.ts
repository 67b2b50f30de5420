/** Running built model artifacts with onnxruntime-node: one session, adapters as feeds. */
export {
  DecoderSession,
  type DecoderSessionOptions,
  type KvCache,
  type StepInput,
  type StepOutput,
  sessionsCreated,
} from "./decoder-session.ts";
export { greedyDecode } from "./greedy.ts";
export { argmaxRow, logProbAt } from "./logits.ts";
export { adapterFeeds, baseFeeds, type LoraFeeds } from "./lora-feeds.ts";
