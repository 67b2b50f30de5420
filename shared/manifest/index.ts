/**
 * The immutable version manifest, the rollback record and the webhook event payload: one zod schema
 * each, shared by the trainer (writer) and the generators (readers); and the version states both
 * sides report (`version-state.ts`).
 */
import { z } from "zod";
import { RUN_NAME, runName } from "./run-name.ts";
import { sha256Hex } from "./sha256.ts";
import { formatVersionRef } from "./version-ref.ts";
import { isRevoked } from "./version-state.ts";

export { parseVersionRef } from "./version-ref.ts";
export {
  isRevoked,
  revocationMessage,
  revokedBy,
  type StoreRecordKind,
  type StoreRefusal,
  type StoreRefusalCode,
  type StoreRepair,
  storeRefusalSchema,
  storeRepairSchema,
  type VersionState,
  versionStateSchema,
} from "./version-state.ts";
export { formatVersionRef, RUN_NAME, runName, sha256Hex };

/** The `schema` tag of a version manifest (`runs/<run>/versions/<12 digits>.json`). */
export const MANIFEST_SCHEMA = "loracast.adapter-version/v1";

/** One file of a published PEFT adapter: its name, its blob's key, sha256 (hex) and size in bytes. */
export const adapterFileSchema = z.object({
  /** File name in the PEFT directory, e.g. `adapter_model.safetensors`. */
  name: z.string().min(1),
  /** Store key of the content-addressed blob. */
  blob: z.string().min(1),
  sha256: sha256Hex,
  bytes: z.number().int().nonnegative(),
});
/** A parsed `adapterFileSchema`. */
export type AdapterFile = z.infer<typeof adapterFileSchema>;

/**
 * The immutable manifest of one adapter version, signed by the trainer: its run and version, the
 * base fingerprint, the adapter's files, and for training runs the probe and the training record.
 */
export const versionManifestSchema = z.object({
  schema: z.literal(MANIFEST_SCHEMA),
  run: runName,
  version: z.number().int().positive(),
  parent: z.number().int().positive().nullable(),
  createdAt: z.iso.datetime(),
  base: z.object({
    /** Fingerprint of the base this adapter was trained on; null when the publisher did not say. */
    fingerprint: z.string().nullable(),
  }),
  // Manifests written before this schema carry `adapter.config`, a copy of adapter_config.json that
  // nothing read: zod drops unknown keys, so they still verify (a signature covers the bytes, not
  // the parsed object). Generators read the config from its blob.
  adapter: z.object({
    files: z.array(adapterFileSchema).min(1),
  }),
  /** Prompt tokens and the logprobs the trainer computed for them; generators check these once they run the model. */
  probe: z
    .object({
      tokens: z.array(z.array(z.number().int().nonnegative())),
      logprobs: z.array(z.array(z.number())),
    })
    .nullable(),
  training: z
    .object({
      step: z.number().int().nonnegative(),
      algorithm: z.string(),
      metrics: z.record(z.string(), z.number()),
    })
    .nullable(),
  publisher: z.object({ service: z.string(), instance: z.string() }),
});
/** A parsed `versionManifestSchema`. */
export type VersionManifest = z.infer<typeof versionManifestSchema>;

/** The file every adapter has; its sha256 is the one APIs report as the version's sha256. */
export const WEIGHTS_FILE = "adapter_model.safetensors";
/** PEFT's adapter configuration file name. */
export const CONFIG_FILE = "adapter_config.json";

/** The manifest's `adapter_model.safetensors` entry; throws when it has none (the schema allows it). */
export function weightsFile(manifest: VersionManifest): AdapterFile {
  const f = manifest.adapter.files.find((x) => x.name === WEIGHTS_FILE);
  if (f === undefined)
    throw new Error(`manifest ${formatVersionRef(manifest.run, manifest.version)} has no ${WEIGHTS_FILE}`);
  return f;
}

/**
 * A rollback revokes the versions `(to, atVersion]`. Records are immutable and only ever add
 * revocations, so every reader derives the same current version whatever order it sees them in.
 */
export const rollbackRecordSchema = z.object({
  schema: z.literal("loracast.rollback/v1"),
  run: runName,
  to: z.number().int().positive(),
  atVersion: z.number().int().positive(),
  createdAt: z.iso.datetime(),
});
/** A parsed `rollbackRecordSchema`. */
export type RollbackRecord = z.infer<typeof rollbackRecordSchema>;

/**
 * A run's signed head (TUF's timestamp role): the newest version and the number of rollback records
 * the trainer has written, re-signed with a fresh expiry before the old one ends. Readers keep the
 * newest head they have seen, so a stale but validly signed state of the store (newest manifests or
 * rollback records hidden, an older head replayed) is detected: `runs/<run>/head.json`.
 */
export const runHeadSchema = z.object({
  schema: z.literal("loracast.head/v1"),
  run: runName,
  /** The newest version published; null before the first. */
  version: z.number().int().positive().nullable(),
  /** How many rollback records the run has. */
  rollbacks: z.number().int().nonnegative(),
  issuedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
});
/** A parsed `runHeadSchema`. */
export type RunHead = z.infer<typeof runHeadSchema>;

/** The current version of a run: the highest version no rollback revoked. */
export function currentVersion(
  versions: readonly number[],
  rollbacks: readonly RollbackRecord[],
): number | null {
  let best: number | null = null;
  for (const v of versions) {
    if (isRevoked(v, rollbacks)) continue;
    if (best === null || v > best) best = v;
  }
  return best;
}

const EVENT_TYPES = ["adapter.published", "adapter.rolled_back", "run.completed"] as const;

/**
 * The webhook payload a trainer sends on publish and rollback: the event type, the run and version,
 * and the manifest's key and sha256, so a generator can check it reads the announced bytes.
 */
export const adapterEventSchema = z.object({
  type: z.enum(EVENT_TYPES),
  run: runName,
  version: z.number().int().positive(),
  manifestKey: z.string().min(1),
  manifestSha256: sha256Hex,
});
/** A parsed `adapterEventSchema`. */
export type AdapterEvent = z.infer<typeof adapterEventSchema>;
