import { type FileHandle, open } from "node:fs/promises";
import { err, ok, type Result } from "../result/index.ts";
import { DEFAULT_MAX_HEADER_BYTES, decodeLayout, headerLength, type TensorEntry } from "./decode.ts";
import { SafetensorsError } from "./errors.ts";

/**
 * A safetensors file on disk, validated from its header alone. Tensors are read one at a time, so a
 * multi-gigabyte checkpoint never has to fit in memory.
 */
export interface SafetensorsReader {
  readonly path: string;
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** The tensor's raw little-endian bytes, in a fresh buffer. */
  read(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Opens a safetensors file on disk and validates its header (lengths, offsets, dtypes, shapes against
 * the file size) without reading tensor data. An `err` is a `SafetensorsError` (an unopenable file is
 * `truncated`); the caller closes the reader.
 */
export async function openSafetensors(
  path: string,
  maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES,
): Promise<Result<SafetensorsReader, SafetensorsError>> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (e) {
    return err(new SafetensorsError("truncated", `cannot open ${path}: ${(e as Error).message}`));
  }
  const failed = async (e: SafetensorsError) => {
    await handle.close();
    return err(e);
  };
  const { size } = await handle.stat();
  const prefix = new Uint8Array(8);
  await handle.read(prefix, 0, 8, 0);
  const n = headerLength(size < 8 ? prefix.subarray(0, size) : prefix, maxHeaderBytes);
  if (!n.ok) return failed(n.error);
  if (8 + n.value > size) {
    return failed(
      new SafetensorsError(
        "truncated",
        `header length ${n.value} runs past the end of the ${size}-byte file`,
      ),
    );
  }
  const head = new Uint8Array(8 + n.value);
  await handle.read(head, 0, head.length, 0);
  const layout = decodeLayout(head, size, maxHeaderBytes);
  if (!layout.ok) return failed(layout.error);
  const { entries, metadata, dataStart } = layout.value;
  const byName = new Map(entries.map((e) => [e.name, e]));
  return ok({
    path,
    entries: byName,
    metadata,
    async read(name) {
      const e = byName.get(name);
      if (e === undefined) throw new Error(`${path} has no tensor ${name}`);
      const out = new Uint8Array(e.end - e.begin);
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, dataStart + e.begin + done);
        if (bytesRead === 0) throw new Error(`${path} ended while reading ${name}`);
        done += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  });
}
