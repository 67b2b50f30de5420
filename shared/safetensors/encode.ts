import { DTYPE_BYTES, type Dtype } from "./dtypes.ts";
import { SafetensorsError } from "./errors.ts";

/** One tensor to write: its dtype, shape (in elements) and raw bytes. */
export interface TensorInput {
  dtype: Dtype;
  shape: readonly number[];
  /** Little-endian element bytes; any typed array is taken as its raw bytes. */
  data: ArrayBufferView;
}

/**
 * Serialises tensors to safetensors. Tensors are laid out widest dtype first, then by name, as the
 * reference writer does, so every tensor starts aligned for its element type, and the header is
 * padded with spaces to a multiple of 8 bytes. `into`, when it has exactly the encoded size, is
 * written in place and returned (every byte of it is overwritten): a caller that encodes the same
 * shapes again and again (the trainer, each publish) saves the page faults of a fresh buffer, which
 * cost as much as the copy itself for a 35 MB adapter (docs/benchmarks.md). `into` may instead be
 * an allocator, called with the encoded size (a buffer in a SharedArrayBuffer that another thread
 * hashes, say); its buffer must have exactly that size. Otherwise a new buffer.
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorInput>>,
  metadata?: Readonly<Record<string, string>>,
  into?: Uint8Array | ((size: number) => Uint8Array),
): Uint8Array {
  const names = Object.keys(tensors).sort((a, b) => {
    const wa = DTYPE_BYTES[(tensors[a] as TensorInput).dtype];
    const wb = DTYPE_BYTES[(tensors[b] as TensorInput).dtype];
    return wb - wa || (a < b ? -1 : a > b ? 1 : 0);
  });
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    if (name === "__metadata__") throw new SafetensorsError("invalid_entry", "name is reserved", name);
    const t = tensors[name] as TensorInput;
    const expected = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    if (expected !== t.data.byteLength) {
      throw new SafetensorsError(
        "size_mismatch",
        `shape [${t.shape.join(", ")}] of ${t.dtype} needs ${expected} bytes, got ${t.data.byteLength}`,
        name,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.byteLength / 8) * 8;
  const size = 8 + headerLen + offset;
  const out =
    typeof into === "function" ? into(size) : into?.byteLength === size ? into : new Uint8Array(size);
  if (out.byteLength !== size) {
    throw new RangeError(`the allocator gave ${out.byteLength} bytes for a ${size}-byte file`);
  }
  new DataView(out.buffer, out.byteOffset, 8).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let cursor = 8 + headerLen;
  for (const name of names) {
    const { data } = tensors[name] as TensorInput;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), cursor);
    cursor += data.byteLength;
  }
  return out;
}
