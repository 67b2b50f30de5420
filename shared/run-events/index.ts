/**
 * The training-run event contract: what `GET /v1/runs/:id/events` streams (SSE) and what the trainer
 * keeps in each run's history. One zod schema each, shared by the trainer (writer), its clients (the
 * local stack's demo) and the tests.
 */
import { z } from "zod";

/** A run's lifecycle state; every run that stopped has exactly one final `status` event. */
export const runStatusSchema = z.enum(["running", "completed", "failed", "cancelled"]);
export type RunStatus = z.infer<typeof runStatusSchema>;

/**
 * Named numbers (metrics, per-phase milliseconds). JSON has no NaN or Infinity, so a value that was
 * not finite arrives as null.
 */
export const runMetricsSchema = z.record(z.string(), z.number().nullable());
export type RunMetrics = z.infer<typeof runMetricsSchema>;

const stepNumber = z.number().int().nonnegative();

/** One event of a run, without its id. `step` counts completed steps (1-based for `step` events). */
export const runEventSchema = z.discriminatedUnion("type", [
  /** A completed step: reward, loss, grad norm, lr, sampled version, staleness, … and time per phase. */
  z.object({
    type: z.literal("step"),
    step: stepNumber,
    metrics: runMetricsSchema,
    phasesMs: runMetricsSchema,
  }),
  /** A version published after `step` steps; `ms` is the publish's wall time. */
  z.object({
    type: z.literal("published"),
    step: stepNumber,
    version: z.number().int().positive(),
    sha256: z.string(),
    ms: z.number(),
  }),
  /** A checkpoint written to the store under `key` after `step` steps. */
  z.object({ type: z.literal("checkpoint"), step: stepNumber, key: z.string(), ms: z.number() }),
  /**
   * Step `step` had a non-finite loss or gradient norm, or its optimizer step left a parameter
   * non-finite; it was undone and changed nothing. `reason` says which, in training terms.
   */
  z.object({ type: z.literal("skipped"), step: stepNumber, reason: z.string() }),
  /** The run stopped; `error` says why when it failed or was cancelled. Always the last event. */
  z.object({ type: z.literal("status"), status: runStatusSchema, error: z.string().nullable() }),
]);
export type RunEvent = z.infer<typeof runEventSchema>;

/**
 * An event as streamed: `seq` is its id (also the SSE `id:` field), 1 for a run's first event and
 * one more for each after it. Ids are stable across trainer restarts, so `Last-Event-ID: <seq>`
 * resumes right after that event.
 */
export const runStreamEventSchema = runEventSchema.and(z.object({ seq: z.number().int().positive() }));
export type RunStreamEvent = z.infer<typeof runStreamEventSchema>;
