/**
 * Content-addressed blobs (`blobs/sha256/<hex>`): written once per distinct bytes, healed when a
 * publish finds them corrupt, and read back into one buffer of the announced size, hashed as they
 * land. The adapter store's `putBlob` and `downloadBlob` are these.
 */
import { createHash } from "node:crypto";
import type { AdapterFile } from "../manifest/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import type { BlobRepair, IntegrityFailure } from "./adapter-store-types.ts";
import { blobKey } from "./keys.ts";
import type { ObjectStore } from "./object-store.ts";

/** sha256 of `bytes`, as lowercase hex (64 digits). */
export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/**
 * A blob's manifest entry: its address `blobs/sha256/<hex>`, its sha256 (`knownSha256` where the
 * caller hashed these very bytes, else computed here) and its size in bytes.
 */
export function blobFile(bytes: Uint8Array, knownSha256?: string): Omit<AdapterFile, "name"> {
  const sha256 = knownSha256 ?? sha256Hex(bytes);
  return { blob: blobKey(sha256), sha256, bytes: bytes.byteLength };
}

/**
 * Uploads a blob unless an object with its address already holds exactly these bytes. An existing
 * object is read back and hashed (one GET of its size) rather than trusted by its size, so a corrupt
 * blob (a flipped bit keeps the size) is rewritten by the next publish that uses it, which also heals
 * the older versions that share it. Each such repair is reported to `onRepaired` once the good bytes
 * are written. `knownSha256` is the bytes' sha256 (lowercase hex) where the caller computed it from
 * these very bytes (the trainer hashes each adapter it encodes): it is not computed again, here or
 * to sign the upload. Returns the file entry (key, sha256, size in bytes) and whether anything was
 * sent.
 */
export async function putBlob(
  objects: ObjectStore,
  bytes: Uint8Array,
  contentType: string | undefined,
  onRepaired: (repair: BlobRepair) => void,
  knownSha256?: string,
): Promise<{ file: Omit<AdapterFile, "name">; uploaded: boolean }> {
  const file = blobFile(bytes, knownSha256);
  const { blob: key, sha256 } = file;
  const hash = createHash("sha256");
  const scratch = Buffer.allocUnsafeSlow(bytes.byteLength);
  const size = await objects.readInto(key, scratch, (region) => hash.update(region));
  const found = size === bytes.byteLength ? hash.digest("hex") : null;
  if (found === sha256) return { file, uploaded: false };
  await objects.put(key, bytes, { sha256, ...(contentType === undefined ? {} : { contentType }) });
  if (size !== null) {
    onRepaired({
      key,
      expectedSha256: sha256,
      foundSha256: found,
      expectedBytes: bytes.byteLength,
      foundBytes: size,
    });
  }
  return { file, uploaded: true };
}

/**
 * Reads a blob into one buffer of the announced size, hashing each region as it lands, so
 * verification costs no second pass and a wrong-sized blob is refused before its bytes are read.
 * `into`, when it has that size, is the buffer (its previous content is overwritten). The failure
 * names the blob: missing, larger or smaller than announced, or another sha256 than the manifest's.
 */
export async function downloadBlob(
  objects: ObjectStore,
  file: AdapterFile,
  options: { into?: Uint8Array; signal?: AbortSignal } = {},
): Promise<Result<Uint8Array, IntegrityFailure>> {
  const { into, signal } = options;
  const out = into?.byteLength === file.bytes ? into : Buffer.allocUnsafeSlow(file.bytes);
  const hash = createHash("sha256");
  const size = await objects.readInto(file.blob, out, (region) => hash.update(region), signal);
  if (size === null) return err({ reason: `blob ${file.name} (${file.blob}) is missing from the store` });
  if (size > file.bytes) {
    return err({
      reason: `blob ${file.name} (${file.blob}) is larger than the ${file.bytes} bytes announced (${size})`,
    });
  }
  if (size !== file.bytes) {
    return err({ reason: `blob ${file.name} (${file.blob}) has ${size} bytes, ${file.bytes} announced` });
  }
  const actual = hash.digest("hex");
  if (actual !== file.sha256) {
    return err({
      reason: `blob ${file.name} (${file.blob}): sha256 ${actual} does not match the manifest's ${file.sha256}`,
    });
  }
  return ok(out);
}
