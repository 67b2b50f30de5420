import type { TensorView } from "./decode.ts";
import { toFloat32 } from "./dtypes.ts";

/** Where a float tensor first holds a value that is not finite, and which value it is. */
export interface NonFinite {
  /** Element index (row-major). */
  index: number;
  value: "NaN" | "+Inf" | "-Inf";
}

/**
 * The first NaN or ±Inf in an F32, F16 or BF16 tensor, or null when every element is finite (or
 * the dtype is not one of those). Runs on every adapter every generator verifies, so it is one tight
 * loop over the raw bits, no conversion: an element is non-finite exactly when its exponent bits are
 * all ones (IEEE 754), and a non-zero mantissa then makes it NaN.
 */
export function firstNonFinite(tensor: TensorView): NonFinite | null {
  // Aligned for 32-bit words whatever the dtype (a copy only when the view is not). The copy is
  // `new Uint8Array(view)`, not `view.slice()`: a Node Buffer's slice is another view at the same
  // offset (uploads arrive as Buffers), which threw a RangeError on 2-byte-aligned F16/BF16 data.
  const bytes = tensor.bytes.byteOffset % 4 === 0 ? tensor.bytes : new Uint8Array(tensor.bytes);
  switch (tensor.dtype) {
    case "F32":
      return scan32(bytes);
    case "F16":
      return scan16(bytes, 0x7c00, 0x03ff);
    case "BF16":
      return scan16(bytes, 0x7f80, 0x007f);
    default:
      return null;
  }
}

/**
 * One pass over an F32, F16 or BF16 tensor: its first NaN or ±Inf (`nonFinite`, as
 * `firstNonFinite` reports it), or, when there is none, its largest magnitude |x| (`largestAbs`;
 * 0 for an empty tensor or another dtype). For F32, which the trainer publishes and most adapters
 * are, both come from one loop over the raw bits: with the sign bit cleared, the bits of finite
 * floats order as their magnitudes do (IEEE 754) and every non-finite one sorts above them, so the
 * largest masked word answers both questions (the PEFT scaling check in model-spec reads
 * `largestAbs` of every lora_B instead of a second pass over the floats).
 */
export function scanFloats(tensor: TensorView): FloatScan {
  if (tensor.dtype !== "F32") {
    const nonFinite = firstNonFinite(tensor);
    if (nonFinite !== null || (tensor.dtype !== "F16" && tensor.dtype !== "BF16"))
      return { nonFinite, largestAbs: 0 };
    const data = toFloat32(tensor.dtype, tensor.bytes);
    let largestAbs = 0;
    for (let i = 0; i < data.length; i++) largestAbs = Math.max(largestAbs, Math.abs(data[i] as number));
    return { nonFinite: null, largestAbs };
  }
  const bytes = tensor.bytes.byteOffset % 4 === 0 ? tensor.bytes : new Uint8Array(tensor.bytes);
  return float32Scan(
    bytes,
    largestMaskedWord(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2)),
  );
}

/** What `scanFloats` says of a tensor: its first non-finite element, or its largest magnitude. */
export interface FloatScan {
  nonFinite: NonFinite | null;
  /** The largest |x| when every element is finite (NaN otherwise). */
  largestAbs: number;
}

/**
 * The largest of `words` with the sign bit cleared (0 for none): for float32 bits, the largest
 * magnitude's bits when all are finite, and at least 0x7f800000 when any is not. Self-contained
 * (no outside names), so that a worker thread can run its source text (`scanFloatsConcurrent`).
 */
export function largestMaskedWord(words: Int32Array): number {
  // Int32 words, not Uint32: high Uint32 values leave V8's small integers and slow the loop severalfold.
  let largest = 0;
  for (let i = 0; i < words.length; i++) {
    const m = (words[i] as number) & 0x7fffffff;
    if (m > largest) largest = m;
  }
  return largest;
}

/**
 * The `scanFloats` answer for an F32 tensor's `bytes` (4-byte aligned) from `largestMaskedWord` of
 * them: the largest magnitude, or, when a word is not finite, where the first such element is.
 */
export function float32Scan(bytes: Uint8Array, largest: number): FloatScan {
  if (largest >= 0x7f800000) return { nonFinite: scan32(bytes), largestAbs: Number.NaN };
  BITS[0] = largest;
  return { nonFinite: null, largestAbs: FLOAT[0] as number };
}

const BITS = new Int32Array(1);
/** `BITS` read as a float32. */
const FLOAT = new Float32Array(BITS.buffer);

// Int32 words, not Uint32: high Uint32 values leave V8's small integers and slow the loop severalfold.
function scan32(bytes: Uint8Array): NonFinite | null {
  const w = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < w.length; i++) {
    const x = w[i] as number;
    if ((x & 0x7f800000) === 0x7f800000) {
      return { index: i, value: (x & 0x007fffff) !== 0 ? "NaN" : x < 0 ? "-Inf" : "+Inf" };
    }
  }
  return null;
}

/** Two halves per 32-bit word until a word holds a non-finite one, then half by half from there. */
function scan16(bytes: Uint8Array, exponent: number, mantissa: number): NonFinite | null {
  const pairs = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  const both = exponent | (exponent << 16);
  let from = pairs.length * 2;
  for (let i = 0; i < pairs.length; i++) {
    const t = (pairs[i] as number) & both;
    if ((t & 0xffff) === exponent || t >>> 16 === exponent) {
      from = 2 * i;
      break;
    }
  }
  const w = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
  for (let i = from; i < w.length; i++) {
    const x = w[i] as number;
    if ((x & exponent) === exponent) {
      return { index: i, value: (x & mantissa) !== 0 ? "NaN" : (x & 0x8000) !== 0 ? "-Inf" : "+Inf" };
    }
  }
  return null;
}
