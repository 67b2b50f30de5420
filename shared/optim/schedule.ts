/** Learning-rate schedules as transformers' get_*_schedule_with_warmup define them. */
export type ScheduleKind = "constant" | "constant_with_warmup" | "linear" | "cosine";

/**
 * A learning-rate schedule: `lr` peak, warmup over `warmupSteps` optimizer steps, decay to 0 at
 * `totalSteps` (linear, cosine).
 */
export interface Schedule {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** The learning rate for optimizer step `step` (0-based, as LambdaLR counts). */
export function learningRate(s: Schedule, step: number): number {
  if (s.kind === "constant") return s.lr;
  if (step < s.warmupSteps) return (s.lr * step) / Math.max(1, s.warmupSteps);
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  switch (s.kind) {
    case "constant_with_warmup":
      return s.lr;
    case "linear":
      return s.lr * Math.max(0, 1 - progress);
    case "cosine":
      return s.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
  }
}
