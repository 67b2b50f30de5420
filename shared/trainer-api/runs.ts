/**
 * Training runs over the trainer's API: `POST /v1/runs` (201), `GET /v1/runs`, `GET /v1/runs/:id`,
 * `POST /v1/runs/:id/cancel`. The events of `GET /v1/runs/:id/events` are `shared/run-events`'.
 */

import { z } from "zod";
import { runName } from "../manifest/index.ts";
import { runMetricsSchema, runStatusSchema } from "../run-events/index.ts";

/**
 * A run as the API shows it. `config` is the run config as the trainer parsed it (defaults filled
 * in, credentials in URLs redacted); the trainer's run config schema is its one definition, so
 * here it is any JSON object.
 */
export const runInfoSchema = z.object({
  run: runName,
  status: runStatusSchema,
  error: z.string().nullable().describe("Why the run failed or was cancelled; null otherwise"),
  step: z
    .number()
    .int()
    .nonnegative()
    .describe("Steps completed; after a resume, the checkpoint's step until the run passes it"),
  steps: z.number().int().positive().describe("Steps the run was configured for"),
  version: z
    .number()
    .int()
    .positive()
    .nullable()
    .describe("The newest version this run published (versions from steps a resume redid included)"),
  metrics: runMetricsSchema
    .nullable()
    .describe("The newest step's metrics; null after a resume until its first step"),
  createdAt: z.iso.datetime(),
  config: z.record(z.string(), z.unknown()),
});
/** The shape {@link runInfoSchema} parses, as zod infers it. */
export type RunInfo = z.infer<typeof runInfoSchema>;

/** `GET /v1/runs`: every run the trainer knows. */
export const runListSchema = z.object({ runs: z.array(runInfoSchema) });
/** The shape {@link runListSchema} parses, as zod infers it. */
export type RunList = z.infer<typeof runListSchema>;
