/**
 * The ONNX input and output names of the built graphs, shared by the builder that writes them and
 * the runtime and training sessions that feed them.
 */

/** The decoder graph's interface (`model.onnx`, `model.append.onnx`). */
export const IO = {
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  /**
   * int32 [batch]: each row's keys after this step, minus one (ORT GroupQueryAttention's
   * `seqlens_k`); graphs built with `attention: "gqa"` take it instead of the mask and positions.
   */
  seqlensK: "seqlens_k",
  /** int32 scalar: the longest row's keys after this step (GroupQueryAttention graphs). */
  totalSequenceLength: "total_sequence_length",
  /** int64 [batch, k]: which positions of each row get logits (the last one when generating). */
  logitsPositions: "logits_positions",
  logits: "logits",
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
  /** The keys and values a step adds, `[batch, kvHeads, sequence, headDim]` (the host-cache graph). */
  appendedKey: (layer: number) => `appended.${layer}.key`,
  appendedValue: (layer: number) => `appended.${layer}.value`,
} as const;

/** The training graph's extra interface (`train.onnx`): the trainer scores and differentiates with it. */
export const TRAIN_IO = {
  /** int64 [k]: flat index (row · sequence + position) of each scored position. */
  scoreRows: "score_rows",
  /** int64 [k]: the token whose log-probability is taken at each scored position. */
  scoreTargets: "score_targets",
  /** float32 scalar: logits are multiplied by this before the softmax (1 / sampling temperature). */
  invTemperature: "inv_temperature",
  /** bool scalar: run the backward pass. False returns empty gradients and costs the forward alone. */
  computeGrads: "compute_grads",
  /** float32 [k]: dLoss/dLogprob per scored position, the seed of the backward pass. */
  logprobGrads: "logprob_grads",
  /** float32 [k] */
  logprobs: "logprobs",
  grad: (peftKey: string) => `grad.${peftKey}`,
} as const;
