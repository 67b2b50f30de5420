import { Transform, type TransformCallback } from "node:stream";
import { DEFAULT_MAX_HEADER_BYTES, decodeHeader, decodeLayout, headerLength } from "./decode.ts";
import type { SafetensorsError } from "./errors.ts";

/**
 * A pass-through stream that checks a safetensors file's header as soon as its bytes have arrived,
 * so a file that the header alone proves bad is refused while it streams, not after the whole
 * file was received (issue 15, item 7). It fails with the codec's own `SafetensorsError` (the same
 * code and text `decodeSafetensors` gives): after 8 bytes when the header length exceeds the cap
 * (at most `maxFileBytes` - 8, since no larger header fits the file), after 8 + header-length
 * bytes when the header is not valid JSON or its entries contradict each other, and at the end of
 * a file shorter than its header. Bytes pass through unchanged; only the header is held, once.
 * What needs the whole file (the data section's length) is left to `decodeSafetensors`.
 */
export function safetensorsHeaderGuard(maxFileBytes: number): Transform {
  const cap = Math.max(0, Math.min(DEFAULT_MAX_HEADER_BYTES, maxFileBytes - 8));
  const held: Buffer[] = [];
  let heldBytes = 0;
  /** 8 + header length once the prefix has arrived. */
  let needed: number | undefined;
  let checked = false;

  // Joins the held chunks only when a check can run (not per chunk: a long header would cost
  // quadratic copying).
  const check = (): SafetensorsError | null => {
    if (needed === undefined) {
      if (heldBytes < 8) return null;
      const len = headerLength(Buffer.concat(held, heldBytes), cap);
      if (!len.ok) return len.error;
      needed = 8 + len.value;
    }
    if (heldBytes < needed) return null;
    checked = true;
    const head = Buffer.concat(held, heldBytes).subarray(0, needed);
    held.length = 0;
    const header = decodeHeader(head, cap);
    return header.ok ? null : header.error;
  };

  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      if (!checked) {
        held.push(chunk);
        heldBytes += chunk.byteLength;
        const bad = check();
        if (bad !== null) return done(bad);
      }
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      if (checked) return done();
      // The file ended inside its length prefix or header: the codec names how short it is.
      const short = decodeLayout(Buffer.concat(held, heldBytes), heldBytes, cap);
      done(short.ok ? null : short.error);
    },
  });
}
