/** Optimizing LoRA factors: AdamW, global-norm clipping and learning-rate schedules, torch semantics. */
export { AdamW, type AdamWSettings, type AdamWState, clipGradNorm, TORCH_ADAMW_DEFAULTS } from "./adamw.ts";
export { learningRate, type Schedule, type ScheduleKind } from "./schedule.ts";
