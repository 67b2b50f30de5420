import { err, ok, type Result } from "../result/index.ts";
import { DTYPE_ARRAY, DTYPE_BYTES, type Dtype, type DtypeArrays, isDtype } from "./dtypes.ts";
import { SafetensorsError } from "./errors.ts";
import { type JsonValue, parseStrictJson, StrictJsonError } from "./strict-json.ts";

/**
 * Headers above this (100 MiB) are refused before any parsing. The reference implementation
 * (upstream safetensors) caps headers at 100,000,000 bytes, slightly less than ours.
 */
export const DEFAULT_MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor of a decoded file: its place in the file, and zero-copy access to its bytes. */
export interface TensorView<D extends Dtype = Dtype> {
  readonly name: string;
  readonly dtype: D;
  readonly shape: readonly number[];
  /** Number of elements (product of the shape). */
  readonly size: number;
  /** The tensor's bytes, a view into the decoded buffer (no copy). */
  readonly bytes: Uint8Array;
  /** The elements as a typed array: a view when the bytes are aligned for it, else a copy. */
  array(): DtypeArrays[D];
}

/** A decoded file: its tensors as zero-copy views, its `__metadata__` strings and where data starts. */
export interface SafetensorsFile {
  /** Tensors in file order (ascending offsets). */
  readonly tensors: ReadonlyMap<string, TensorView>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Bytes of the length prefix plus header, i.e. where tensor data starts. */
  readonly dataStart: number;
}

/** Options of `decodeSafetensors`. */
export interface DecodeOptions {
  /** Refuse headers longer than this many bytes. @default 100 MiB */
  maxHeaderBytes?: number;
}

const ENTRY_KEYS = new Set(["dtype", "shape", "data_offsets"]);

/**
 * Parses and validates a complete safetensors file held in memory. Every structural rule of the
 * format is checked, so a file that decodes here has tensors that exactly tile the data section.
 */
export function decodeSafetensors(
  buffer: Uint8Array,
  options: DecodeOptions = {},
): Result<SafetensorsFile, SafetensorsError> {
  try {
    return ok(decodeOrThrow(buffer, options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES));
  } catch (e) {
    if (e instanceof SafetensorsError) return err(e);
    throw e;
  }
}

/** Where each tensor of a file lies, relative to the start of the data section. */
export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
  size: number;
}

/**
 * A validated header: each tensor's place relative to the data section, the `__metadata__` strings,
 * and `dataStart` = 8 + the header's length in bytes.
 */
export interface SafetensorsLayout {
  entries: TensorEntry[];
  metadata: Record<string, string>;
  dataStart: number;
}

/** The 8-byte length prefix says how long the header is. */
export function headerLength(
  prefix: Uint8Array,
  maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES,
): Result<number, SafetensorsError> {
  if (prefix.byteLength < 8) {
    return err(
      new SafetensorsError(
        "truncated",
        `file is ${prefix.byteLength} bytes, shorter than the 8-byte header length`,
      ),
    );
  }
  const headerLen = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(maxHeaderBytes)) {
    return err(
      new SafetensorsError(
        "header_too_large",
        `header length ${headerLen} exceeds the cap of ${maxHeaderBytes} bytes`,
      ),
    );
  }
  return ok(Number(headerLen));
}

/**
 * Validates the header of a file of `fileLength` bytes, given at least its first 8 + header-length
 * bytes. This is all a reader needs to locate tensors without holding the file in memory.
 */
export function decodeLayout(
  head: Uint8Array,
  fileLength: number,
  maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES,
): Result<SafetensorsLayout, SafetensorsError> {
  try {
    return ok(parseLayout(head, fileLength, maxHeaderBytes));
  } catch (e) {
    if (e instanceof SafetensorsError) return err(e);
    throw e;
  }
}

/** What the header alone proves: its entries, checked against each other but not against a file length. */
export interface SafetensorsHeader {
  entries: TensorEntry[];
  metadata: Record<string, string>;
  dataStart: number;
  /** Bytes the tensors cover, i.e. the data section's length in a valid file. */
  dataLength: number;
}

/**
 * Validates a header on its own, given its first 8 + header-length bytes, before the rest of the
 * file exists (an upload still streaming). Every rule that does not need the file's length is
 * checked, with the same errors as `decodeLayout`; a file whose data section is not `dataLength`
 * bytes long is still refused by `decodeLayout`/`decodeSafetensors` once it is complete.
 */
export function decodeHeader(
  head: Uint8Array,
  maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES,
): Result<SafetensorsHeader, SafetensorsError> {
  try {
    const { entries, metadata, dataStart } = parseLayout(head, undefined, maxHeaderBytes);
    const last = entries[entries.length - 1];
    return ok({ entries, metadata, dataStart, dataLength: last === undefined ? 0 : last.end });
  } catch (e) {
    if (e instanceof SafetensorsError) return err(e);
    throw e;
  }
}

/** One parser for both: `fileLength` undefined checks only what the header proves by itself. */
function parseLayout(
  buffer: Uint8Array,
  fileLength: number | undefined,
  maxHeaderBytes: number,
): SafetensorsLayout {
  const len = headerLength(buffer, maxHeaderBytes);
  if (!len.ok) throw len.error;
  const n = len.value;
  if (8 + n > (fileLength ?? buffer.byteLength) || 8 + n > buffer.byteLength) {
    throw new SafetensorsError(
      "truncated",
      `header length ${n} runs past the end of the ${fileLength ?? buffer.byteLength}-byte file`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError("invalid_json", "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw new SafetensorsError("invalid_json", "header must start with '{'");
  let header: JsonValue;
  try {
    header = parseStrictJson(text);
  } catch (e) {
    if (e instanceof StrictJsonError) {
      if (e.duplicateKey !== undefined) {
        throw new SafetensorsError("duplicate_key", `header has the key "${e.duplicateKey}" more than once`);
      }
      throw new SafetensorsError("invalid_json", `header is not valid JSON: ${e.message}`);
    }
    throw e;
  }
  if (!isObject(header)) throw new SafetensorsError("invalid_json", "header must be a JSON object");

  const dataStart = 8 + n;
  const dataLen = fileLength === undefined ? undefined : fileLength - dataStart;
  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];

  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value);
      continue;
    }
    if (name.length === 0) throw new SafetensorsError("invalid_entry", "tensor name is empty");
    entries.push({ name, ...parseEntry(name, value) });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of entries) {
    if (e.begin !== cursor) {
      const what =
        e.begin < cursor ? "overlaps the previous tensor" : "leaves a gap after the previous tensor";
      throw new SafetensorsError(
        "invalid_offsets",
        `data_offsets [${e.begin}, ${e.end}] ${what} (expected start ${cursor})`,
        e.name,
      );
    }
    if (dataLen !== undefined && e.end > dataLen) {
      throw new SafetensorsError(
        "invalid_offsets",
        `data_offsets end ${e.end} is past the ${dataLen}-byte data section`,
        e.name,
      );
    }
    cursor = e.end;
  }
  if (dataLen !== undefined && cursor !== dataLen) {
    throw new SafetensorsError(
      "invalid_offsets",
      `tensors cover ${cursor} bytes but the data section has ${dataLen}`,
    );
  }
  return { entries, metadata, dataStart };
}

function decodeOrThrow(buffer: Uint8Array, maxHeaderBytes: number): SafetensorsFile {
  const layout = parseLayout(buffer, buffer.byteLength, maxHeaderBytes);
  const tensors = new Map<string, TensorView>();
  for (const e of layout.entries) {
    tensors.set(e.name, makeView(buffer, layout.dataStart, e));
  }
  return { tensors, metadata: layout.metadata, dataStart: layout.dataStart };
}

function parseEntry(name: string, value: JsonValue) {
  if (!isObject(value)) throw new SafetensorsError("invalid_entry", "entry must be an object", name);
  for (const k of Object.keys(value)) {
    if (!ENTRY_KEYS.has(k)) throw new SafetensorsError("invalid_entry", `unexpected field "${k}"`, name);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDtype(dtype))
    throw new SafetensorsError("invalid_dtype", `unsupported dtype ${JSON.stringify(dtype)}`, name);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new SafetensorsError(
      "invalid_shape",
      `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      name,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new SafetensorsError(
      "invalid_offsets",
      `data_offsets must be two non-negative integers, got ${JSON.stringify(offsets)}`,
      name,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin)
    throw new SafetensorsError(
      "invalid_offsets",
      `data_offsets [${begin}, ${end}] end before they begin`,
      name,
    );
  const dims = shape as number[];
  // BigInt so that a hostile shape cannot overflow into a plausible size.
  const elements = dims.reduce((acc, d) => acc * BigInt(d), 1n);
  const expected = elements * BigInt(DTYPE_BYTES[dtype]);
  if (expected !== BigInt(end - begin)) {
    throw new SafetensorsError(
      "size_mismatch",
      `shape [${dims.join(", ")}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
      name,
    );
  }
  return { dtype, shape: dims, begin, end, size: Number(elements) };
}

function parseMetadata(value: JsonValue): Record<string, string> {
  if (!isObject(value)) throw new SafetensorsError("invalid_metadata", "__metadata__ must be an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        "invalid_metadata",
        `__metadata__ value for "${k}" must be a string, got ${typeof v}`,
      );
    }
    out[k] = v;
  }
  return out;
}

function makeView(buffer: Uint8Array, dataStart: number, e: TensorEntry): TensorView {
  const bytes = buffer.subarray(dataStart + e.begin, dataStart + e.end);
  return {
    name: e.name,
    dtype: e.dtype,
    shape: e.shape,
    size: e.size,
    bytes,
    array() {
      const Ctor = DTYPE_ARRAY[e.dtype];
      const width = DTYPE_BYTES[e.dtype];
      if (bytes.byteOffset % width === 0) return new Ctor(bytes.buffer, bytes.byteOffset, e.size);
      const copy = new Uint8Array(bytes);
      return new Ctor(copy.buffer, 0, e.size);
    },
  };
}

function isObject(v: JsonValue | undefined): v is { [key: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
