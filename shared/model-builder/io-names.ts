/** The decoder graph's interface: input and output names shared by the builder and the runtime. */
export const IO = {
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  /** int64 [batch, k]: which positions of each row get logits (the last one when generating). */
  logitsPositions: "logits_positions",
  logits: "logits",
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
} as const;
