/**
 * The training-run event contract: what `GET /v1/runs/:id/events` streams (SSE) and what the trainer
 * keeps in each run's history. One zod schema each, shared by the trainer (writer), its clients (the
 * local stack's demo) and the tests.
 */
import { z } from "zod";

/** A run's lifecycle state; every run that stopped has exactly one final `status` event. */
export const runStatusSchema = z.enum(["running", "completed", "failed", "cancelled"]);
/** A run's status (`runStatusSchema`). */
export type RunStatus = z.infer<typeof runStatusSchema>;

/**
 * Named numbers (metrics, per-phase milliseconds). JSON has no NaN or Infinity, so a value that was
 * not finite arrives as null.
 */
export const runMetricsSchema = z.record(z.string(), z.number().nullable());
/** Named numbers of one event (`runMetricsSchema`); null where a value was not finite. */
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
  /**
   * The trainer restarted a run that was running (after a crash or a stop) from its newest
   * checkpoint, taken after `step` steps. The run had reached `lastStep` (its newest `step` or
   * `skipped` event) before; the steps after `step` are lost and the events that follow redo them
   * under new ids. Versions published from the lost steps stay in the store and in the history
   * before this event; the redone steps sample from `version` (the newest version the checkpoint
   * had published, 0 for none) until the run publishes again, under new version numbers.
   */
  z.object({
    type: z.literal("resumed"),
    step: stepNumber,
    lastStep: stepNumber,
    version: z.number().int().nonnegative(),
  }),
  /**
   * The trainer shut down cleanly (SIGTERM or SIGINT) after `step` steps while the run was running;
   * the run resumes at its next start (a `resumed` event follows). A stop without this event was a
   * crash or a kill: only those count towards TRAINER_MAX_RESUMES. Not a final event.
   */
  z.object({ type: z.literal("stopped"), step: stepNumber }),
  /** The run stopped; `error` says why when it failed or was cancelled. Always the last event. */
  z.object({ type: z.literal("status"), status: runStatusSchema, error: z.string().nullable() }),
]);
/** One event of a run's history (`runEventSchema`), discriminated by `type`. */
export type RunEvent = z.infer<typeof runEventSchema>;

/**
 * An event as streamed: `seq` is its id (also the SSE `id:` field), 1 for a run's first event and
 * one more for each after it. The history only grows: an id, once sent, names the same event
 * forever, across trainer restarts (a resumed run appends a `resumed` event and redoes its lost
 * steps under new ids), so `Last-Event-ID: <seq>` resumes right after that event.
 */
export const runStreamEventSchema = runEventSchema.and(z.object({ seq: z.number().int().positive() }));
/** One event as streamed, with its `seq` (`runStreamEventSchema`). */
export type RunStreamEvent = z.infer<typeof runStreamEventSchema>;
