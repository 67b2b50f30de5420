/**
 * The generator's `GET /v1/adapters`: what this generator knows of each run's versions, in the
 * shared version states (`shared/manifest`, `version-state.ts`), with the store records it refused.
 */

import { z } from "zod";
import { sha256Hex, storeRefusalSchema, versionStateSchema } from "../manifest/index.ts";

/** The active version of each run this generator serves, by run name (`/v1/adapters`, `/readyz`). */
const activeVersionsSchema = z.record(
  z.string(),
  z.object({ version: z.number().int().positive(), sha256: sha256Hex.nullable() }),
);
/**
 * The shape {@link activeVersionsSchema} parses, as zod infers it.
 * Part of the wire contract for clients outside this repository; nothing inside imports it yet.
 * @public
 */
export type ActiveVersions = z.infer<typeof activeVersionsSchema>;

/** `GET /readyz` once the generator has resolved the latest versions (503 `not_ready` before). */
export const readinessSchema = z.object({ status: z.literal("ready"), active: activeVersionsSchema });
/** The shape {@link readinessSchema} parses, as zod infers it. */
export type Readiness = z.infer<typeof readinessSchema>;

/**
 * `POST /v1/webhooks/adapters` answers 202: whether this generator follows the event's run (GENERATOR_RUNS)
 * and the Standard Webhooks `webhook-id` it recorded against replays.
 */
export const webhookAcceptedSchema = z.object({ accepted: z.boolean(), id: z.string() });
/** The shape {@link webhookAcceptedSchema} parses, as zod infers it. */
export type WebhookAccepted = z.infer<typeof webhookAcceptedSchema>;

/** What started a version's pull: a signed webhook, the periodic reconcile, a request naming it, or a rollback. */
const TRIGGERS = ["webhook", "reconcile", "on-demand", "rollback"] as const;

/** The part of a pull under way: fetching the blobs, or checking them against the manifest and the base. */
const PULL_PHASES = ["downloading", "verifying"] as const;

/** One row of the generator's `GET /v1/adapters`: this generator's view of a version. */
export const adapterRowSchema = z.object({
  run: z.string(),
  version: z.number().int().positive(),
  state: versionStateSchema,
  /** While a pull is under way, which part of it; null otherwise. A pull leaves the state as it was. */
  pulling: z.enum(PULL_PHASES).nullable(),
  /** Whether the weights are in memory; the cache drops those of staged, retired and revoked versions. */
  loaded: z.boolean(),
  sha256: sha256Hex.nullable(),
  manifestSha256: sha256Hex.nullable(),
  bytes: z.number().int().nonnegative().nullable(),
  /** Why it failed, why it was revoked, or why the last pull broke off; null otherwise. */
  reason: z.string().nullable(),
  trigger: z.enum(TRIGGERS),
  /** Epoch milliseconds. */
  announcedAt: z.number(),
  activatedAt: z.number().nullable(),
  pinned: z.boolean(),
});
/** The shape {@link adapterRowSchema} parses, as zod infers it. */
export type AdapterRow = z.infer<typeof adapterRowSchema>;

/**
 * The generator's `GET /v1/adapters`: the active version of each run, every version it knows (of
 * the versions failed because their manifest was refused, the newest `REFUSED_VERSION_ROWS` per
 * run: whoever writes to the bucket chooses how many there are), and the store records it refused
 * lately (per run, the newest few; newest first).
 */
export const adapterListSchema = z.object({
  /**
   * When this generator process started, epoch milliseconds: a version published before it was
   * activated at start-up, so its activation is no publish → active handoff (the trainer's fleet view).
   * Optional: generators from before it omit it, and a fleet mid-upgrade still lists them.
   */
  startedAt: z.number().optional(),
  active: activeVersionsSchema,
  data: z.array(adapterRowSchema),
  /** Per run, how many versions failed for a refused manifest are left out of `data` (runs with none absent). */
  refusedVersionsOmitted: z.record(z.string(), z.number().int().positive()),
  refused: z.array(storeRefusalSchema),
});
/** The shape {@link adapterListSchema} parses, as zod infers it. */
export type AdapterList = z.infer<typeof adapterListSchema>;

/** How many versions failed for a refused manifest `GET /v1/adapters` lists per run, newest first. */
export const REFUSED_VERSION_ROWS = 10;
