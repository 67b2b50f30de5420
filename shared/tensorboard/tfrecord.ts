/**
 * TFRecord framing, the container of TensorBoard event files (tensorflow/core/lib/io/record_writer.cc;
 * TensorBoard's tensorboard/summary/writer/record_writer.py): each record is
 * `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`, little-endian,
 * with CRC-32C (Castagnoli) masked as `rotr15(crc) + 0xa282ead8`.
 */
import { crc32c } from "@aws-crypto/crc32c";
import { err, type Failure, ok, type Result } from "@loracast/shared/result";

/** TFRecord's CRC mask: rotates right by 15 bits and adds a constant, so CRCs of CRCs stay useful. */
function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One record framed for a TFRecord file: header (length + its masked CRC), data, data's masked CRC. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Why a TFRecord file could not be read: a CRC fails (`corrupt`). */
export interface TfRecordError extends Failure {
  readonly code: "corrupt";
  /** Byte offset of the record that failed. */
  readonly offset: number;
}

/** A TFRecord file's records, and where its last record was cut off, if it was. */
export interface TfRecords {
  /** Every complete record's data, in order, each CRC checked. */
  records: Uint8Array[];
  /**
   * Byte offset of a last record that is cut off (its writer is still at work, or was killed in a
   * write), else null. TensorBoard reads up to there and waits; so does this.
   */
  partialAt: number | null;
}

/** Reads every record of a TFRecord file, checking both CRCs of each; a CRC that fails is `corrupt`. */
export function readRecords(bytes: Uint8Array): Result<TfRecords, TfRecordError> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const corrupt = (message: string) =>
      err({ code: "corrupt" as const, offset: at, message: `record at byte ${at}: ${message}` });
    if (bytes.length - at < 12) return ok({ records, partialAt: at });
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8)))
      return corrupt("length CRC mismatch");
    const length = Number(view.getBigUint64(at, true));
    if (bytes.length - at - 16 < length) return ok({ records, partialAt: at });
    const data = bytes.subarray(at + 12, at + 12 + length);
    if (view.getUint32(at + 12 + length, true) !== maskedCrc32c(data)) return corrupt("data CRC mismatch");
    records.push(data);
    at += 16 + length;
  }
  return ok({ records, partialAt: null });
}
