/**
 * Adapter versions over the trainer's API: `POST /v1/runs/:run/adapters` (publish a PEFT adapter
 * trained elsewhere), `GET /v1/runs/:run/versions` (the store's view of a run) and
 * `POST /v1/runs/:run/rollback`.
 */

import { z } from "zod";
import {
  runName,
  sha256Hex,
  storeRefusalSchema,
  storeRepairSchema,
  versionStateSchema,
} from "../manifest/index.ts";

/**
 * `POST /v1/runs/:run/adapters` answers 201 with the version it published. A multipart body with
 * the PEFT `adapter_config.json` and `adapter_model.safetensors` goes in (see README, "Publish").
 */
export const publishResultSchema = z.object({
  run: runName,
  version: z.number().int().positive(),
  sha256: sha256Hex.describe("sha256 of adapter_model.safetensors"),
  manifestKey: z.string().describe("Store key of the version's manifest, relative to the prefix"),
  manifestSha256: sha256Hex.describe("sha256 of the manifest's bytes, as the webhook announces it"),
  uploadedBytes: z
    .number()
    .int()
    .nonnegative()
    .describe("Bytes this publish sent to the store (blobs that already existed cost nothing)"),
});
/** The shape {@link publishResultSchema} parses, as zod infers it. */
export type PublishResult = z.infer<typeof publishResultSchema>;

/** `POST /v1/runs/:run/rollback`: the version to go back to; every later one is revoked. */
export const rollbackRequestSchema = z.object({
  version: z.number().int().positive().describe("The version that becomes current"),
});
/**
 * The shape {@link rollbackRequestSchema} parses, as zod infers it.
 * Part of the wire contract for clients outside this repository; nothing inside imports it yet.
 * @public
 */
export type RollbackRequest = z.infer<typeof rollbackRequestSchema>;

/** What `POST /v1/runs/:run/rollback` answers: the run's current version and the versions it revoked. */
export const rollbackResultSchema = z.object({
  run: runName,
  current: z.number().int().positive(),
  revoked: z.array(z.number().int().positive()).describe("Versions this rollback revoked, ascending"),
});
/** The shape {@link rollbackResultSchema} parses, as zod infers it. */
export type RollbackResult = z.infer<typeof rollbackResultSchema>;

/**
 * One row of the trainer's `GET /v1/runs/:run/versions`: the store's view (active, retired, revoked,
 * or failed when its manifest is missing or fails verification; `sha256` and `createdAt` are then null).
 */
const runVersionSchema = z.object({
  version: z.number().int().positive(),
  state: versionStateSchema,
  sha256: sha256Hex.nullable(),
  createdAt: z.iso.datetime().nullable(),
  manifestKey: z.string(),
  /** For a revoked version, `revocationMessage`; for a failed one, why; otherwise null. */
  reason: z.string().nullable(),
});
/** The shape {@link runVersionSchema} parses, as zod infers it. */
export type RunVersion = z.infer<typeof runVersionSchema>;

/**
 * The trainer's `GET /v1/runs/:run/versions`; `current` is the active version (null before any
 * publish). `store` says what the read found: the run's records the trainer refuses lately
 * (unsigned, foreign, malformed, misplaced; newest first) and those it rewrote from its ledger on
 * this read.
 */
export const runVersionsSchema = z.object({
  run: z.string(),
  current: z.number().int().positive().nullable(),
  versions: z.array(runVersionSchema),
  store: z.object({
    refused: z.array(storeRefusalSchema),
    repaired: z.array(storeRepairSchema),
  }),
});
/** The shape {@link runVersionsSchema} parses, as zod infers it. */
export type RunVersions = z.infer<typeof runVersionsSchema>;
