/** Optimizing LoRA factors: AdamW, global-norm clipping and learning-rate schedules, torch semantics. */
export { AdamW, type AdamWSettings, type AdamWState, TORCH_ADAMW_DEFAULTS } from "./adamw.ts";
export { learningRate } from "./schedule.ts";
