/** Element types this codec accepts. The names are the ones safetensors writes on the wire. */
const DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"] as const;
/** A safetensors element type, as the header spells it (`"F32"`, `"BF16"`, ...). */
export type Dtype = (typeof DTYPES)[number];

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<Dtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Typed array a dtype maps to. F16 and BF16 come back as raw 16-bit words; callers convert. */
export interface DtypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

type ArrayCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): DtypeArrays[Dtype];
  new (length: number): DtypeArrays[Dtype];
};

/** The typed-array constructor of each dtype (`DtypeArrays`), for views over a tensor's bytes. */
export const DTYPE_ARRAY: Record<Dtype, ArrayCtor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
} as Record<Dtype, ArrayCtor>;

/** Whether a header's `dtype` string is one this codec accepts. */
export function isDtype(value: unknown): value is Dtype {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** float32 → IEEE half bits, rounding to nearest even, as torch's `.half()` does. */
function floatToHalf(v: number): number {
  scratch[0] = v;
  const x = scratchBits[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  let shift = 13;
  let half = sign | (e << 10);
  if (e <= 0) {
    // Subnormal (or zero): the implicit bit joins the mantissa, which shifts further right.
    if (e < -10) return sign;
    mant |= 0x800000;
    shift = 14 - e;
    half = sign;
  }
  const rest = mant & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  half += mant >>> shift;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return half;
}

/** Narrows float32 values to F16 bits (round to nearest even). */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i] ?? 0);
  return out;
}

/** Widens float tensor bytes (F32, F16, BF16, F64) to a fresh Float32Array. */
export function toFloat32(dtype: Dtype, bytes: Uint8Array): Float32Array {
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes);
  switch (dtype) {
    case "F32":
      return new Float32Array(
        aligned.buffer.slice(aligned.byteOffset, aligned.byteOffset + aligned.byteLength),
      );
    case "F64":
      return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 8));
    case "F16": {
      const src = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i] ?? 0);
      return out;
    }
    case "BF16": {
      const src = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
      const wide = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) wide[i] = (src[i] ?? 0) << 16;
      return new Float32Array(wide.buffer);
    }
    default:
      throw new Error(`dtype ${dtype} is not a float type`);
  }
}
