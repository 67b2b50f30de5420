/**
 * The one vocabulary for the state of an adapter version, shared by the trainer's
 * `GET /v1/runs/:run/versions` (`shared/trainer-api`), the generator's `GET /v1/adapters`
 * (`shared/generator-api`), the docs and the tests; and the store refusals and repairs both report. docs/architecture.md ("Version states") has the transition table.
 */
import { z } from "zod";
import type { RollbackRecord } from "./index.ts";
import { formatVersionRef } from "./version-ref.ts";

/**
 * - `announced`: known to exist (webhook or listing), not yet pulled and verified here;
 * - `staged`: pulled and verified, not active (e.g. a newer version pulled on demand before its webhook);
 * - `active`: what `model: "<run>"` serves (trainer: the run's current version);
 * - `retired`: superseded by a newer active version; still servable when named exactly (`<run>@<v>`);
 * - `revoked`: a rollback record revoked it; refused when named, unless the operator allows it;
 * - `failed`: verification failed on this generator (with a reason); never served.
 */
const VERSION_STATES = ["announced", "staged", "active", "retired", "revoked", "failed"] as const;
/** A version's lifecycle state as both services report it. */
export const versionStateSchema = z.enum(VERSION_STATES);
/** A parsed `versionStateSchema`. */
export type VersionState = z.infer<typeof versionStateSchema>;

/** The rollback record that revoked `version`, the earliest listed one if several did; null if none did. */
export function revokedBy(version: number, rollbacks: readonly RollbackRecord[]): RollbackRecord | null {
  return rollbacks.find((r) => version > r.to && version <= r.atVersion) ?? null;
}

/** True when some rollback record revokes `version`. */
export function isRevoked(version: number, rollbacks: readonly RollbackRecord[]): boolean {
  return revokedBy(version, rollbacks) !== null;
}

/** How APIs and logs name a revocation, e.g. "demo@2 was revoked by rollback to v1 at 2026-…Z". */
export function revocationMessage(version: number, rollback: RollbackRecord): string {
  return `${formatVersionRef(rollback.run, version)} was revoked by rollback to v${rollback.to} at ${rollback.createdAt}`;
}

/**
 * Why a store record (manifest, rollback record, head) was refused on read; each code labels
 * `loracast_store_records_refused_total{reason}` (docs/architecture.md, "Trust and signing"):
 * - `unsigned`: no signature envelope; `malformed_signature`: the envelope is not one;
 * - `foreign_key`: signed only by keys the reader does not trust;
 * - `bad_signature`: a trusted key's signature does not verify (the bytes were altered);
 * - `malformed`: not JSON, or not the record's schema (a manifest that lists no weights, too);
 * - `misplaced`: validly signed, but it names another run or version than its key (moved or copied);
 * - `event_mismatch`: its sha256 is not the one a signed webhook announced for that key;
 * - `too_large`: a file it lists is larger than the reader's adapter cache bound.
 */
export const STORE_REFUSAL_CODES = [
  "unsigned",
  "malformed_signature",
  "foreign_key",
  "bad_signature",
  "malformed",
  "misplaced",
  "event_mismatch",
  "too_large",
] as const;
/** Why a store record was refused on read (the `code` of `StoreRefusal`). */
export type StoreRefusalCode = (typeof STORE_REFUSAL_CODES)[number];

/** The kinds of signed store records. */
export const STORE_RECORD_KINDS = ["manifest", "rollback", "head"] as const;
/** Which kind of store record was refused: a manifest, a rollback record or a run head. */
export type StoreRecordKind = (typeof STORE_RECORD_KINDS)[number];

/** One store record a generator refused, as `GET /v1/adapters` reports it (`refused`). */
export const storeRefusalSchema = z.object({
  run: z.string(),
  record: z.enum(STORE_RECORD_KINDS),
  /** The record's store key, relative to the prefix. */
  key: z.string(),
  code: z.enum(STORE_REFUSAL_CODES),
  /** The refusal as logged, naming the key and why. */
  message: z.string(),
  /** Epoch milliseconds of the first and the latest refusal of this key. */
  firstSeenAt: z.number(),
  lastSeenAt: z.number(),
  /**
   * How many reads refused it: each distinct content of the key once (a generator does not judge
   * bytes it refused before again; a rollback record is read once).
   */
  count: z.number().int().positive(),
});
/** A parsed `storeRefusalSchema`. */
export type StoreRefusal = z.infer<typeof storeRefusalSchema>;

/**
 * What the trainer found wrong with a record it signed, against its ledger: `missing`, `altered`
 * (other bytes under the key), `altered_signature` (the record's envelope gone or changed) or
 * `stale` (a head naming fewer versions or rollback records than the trainer signed).
 */
const STORE_REPAIR_FINDINGS = ["missing", "altered", "altered_signature", "stale"] as const;

/** One record the trainer rewrote from its ledger (`GET /v1/runs/:run/versions`, `store.repaired`). */
export const storeRepairSchema = z.object({
  record: z.enum(["rollback", "head"]),
  /** The record's store key, relative to the prefix. */
  key: z.string(),
  found: z.enum(STORE_REPAIR_FINDINGS),
  /** The repair as logged, naming the key. */
  message: z.string(),
});
/** A parsed `storeRepairSchema`. */
export type StoreRepair = z.infer<typeof storeRepairSchema>;
