/**
 * Reading signed metadata back (version manifests, rollback records, run heads): the detached
 * signature by a trusted key when signatures are required (`shared/signing`), strict JSON, the
 * record's schema, and whether it belongs under the key it was read from. Each refusal carries its
 * code (`STORE_REFUSAL_CODES` in shared/manifest); the adapter store counts and reports it.
 */
import type { z } from "zod";
import { formatVersionRef, type StoreRecordKind, versionManifestSchema } from "../manifest/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { type SignatureFailure, signatureKey, type TrustedKeys } from "../signing/index.ts";
import type { ManifestRefusal, StoredManifest } from "./adapter-store-types.ts";
import { manifestKey } from "./keys.ts";
import type { ObjectStore } from "./object-store.ts";
import type { RefusedRecord } from "./refusal-log.ts";

/**
 * Null when `bytes` (whose sha256 is `sha256`) carry a valid signature by one of `trusted`, or when
 * `trusted` is null or absent (signatures not required); else why not.
 */
export async function signatureFailure(
  objects: ObjectStore,
  trusted: TrustedKeys | null | undefined,
  bytes: Uint8Array,
  sha256: string,
): Promise<SignatureFailure | null> {
  if (trusted == null) return null;
  const verdict = trusted.verify(bytes, await objects.get(signatureKey(sha256)));
  return verdict.ok ? null : verdict.error;
}

/**
 * Verifies and parses a small signed record read from `key`: its signature (`unsigned`, from
 * `signatureFailure`), strict JSON (`malformed`), `schema` (`malformed`), and `misplaced` (why the
 * record does not belong under `key`, or null). The refusal's reason names the record and its key.
 */
export function parseSignedRecord<T>(
  record: Extract<StoreRecordKind, "rollback" | "head">,
  key: string,
  bytes: Uint8Array,
  unsigned: SignatureFailure | null,
  schema: z.ZodType<T>,
  misplaced: (value: T) => string | null,
): Result<T, RefusedRecord> {
  const refused = (code: RefusedRecord["code"], why: string) =>
    err({ record, key, code, reason: `${record} record ${key} refused: ${why}` });
  if (unsigned !== null) return refused(unsigned.code, unsigned.reason);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return refused("malformed", "not valid JSON");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return refused("malformed", `${issue?.path.join(".")}: ${issue?.message}`);
  }
  const elsewhere = misplaced(parsed.data);
  return elsewhere === null ? ok(parsed.data) : refused("misplaced", elsewhere);
}

/**
 * Judges a version manifest's `bytes` (sha256 `sha256`) read from `key`: the sha256 a webhook
 * announced (`event_mismatch`), its signature (`unsigned`, from `signatureFailure`; not read on a
 * mismatch), strict JSON and the manifest schema (`malformed`), and its run and version naming `key`
 * (`misplaced`).
 */
export function parseManifest(
  key: string,
  bytes: Uint8Array,
  sha256: string,
  expectedSha256: string | undefined,
  unsigned: SignatureFailure | null,
): Result<StoredManifest, ManifestRefusal> {
  const refused = (code: RefusedRecord["code"], reason: string) => err({ reason, code });
  if (expectedSha256 !== undefined && sha256 !== expectedSha256)
    return refused(
      "event_mismatch",
      `manifest ${key}: sha256 ${sha256} does not match the announced ${expectedSha256}`,
    );
  if (unsigned !== null) return refused(unsigned.code, `manifest ${key} refused: ${unsigned.reason}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return refused("malformed", `manifest ${key}: not valid JSON`);
  }
  const parsed = versionManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return refused("malformed", `manifest ${key}: ${issue?.path.join(".")}: ${issue?.message}`);
  }
  if (manifestKey(parsed.data.run, parsed.data.version) !== key)
    return refused(
      "misplaced",
      `manifest ${key}: names ${formatVersionRef(parsed.data.run, parsed.data.version)}, which belongs elsewhere`,
    );
  return ok({ manifest: parsed.data, key, sha256 });
}
