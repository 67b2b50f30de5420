/**
 * A Hugging Face checkpoint directory: `config.json` plus one `model.safetensors` or shards listed
 * in `model.safetensors.index.json`. Tensors are located from the headers and read one at a time.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ModelConfigError } from "../model-spec/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import {
  openSafetensors,
  type SafetensorsReader,
  type TensorEntry,
  toFloat32,
} from "../safetensors/index.ts";
import { type Architecture, parseArchitecture } from "./architecture.ts";

/**
 * A checkpoint directory that cannot be read: an unreadable `config.json`, a bad shard index or
 * shard, or (thrown by `Checkpoint`'s reads) a missing tensor or one that is not a float type.
 */
export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

/**
 * An open HF checkpoint: its config and architecture, and its tensors by name, read one at a time
 * and widened to float32 (F64, F32, F16 or BF16 on disk). `close` releases every shard.
 */
export interface Checkpoint {
  dir: string;
  config: Record<string, unknown>;
  arch: Architecture;
  has(name: string): boolean;
  entry(name: string): TensorEntry;
  /** The tensor widened to float32. */
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, "utf8"));
}

/**
 * Opens `dir` (`model.safetensors`, or the shards of `model.safetensors.index.json`) and validates
 * every header; an `err` is a `CheckpointError`, or the `ModelConfigError` of its `config.json`.
 */
export async function openCheckpoint(
  dir: string,
): Promise<Result<Checkpoint, CheckpointError | ModelConfigError>> {
  let config: unknown;
  try {
    config = await readJson(join(dir, "config.json"));
  } catch (e) {
    return err(new CheckpointError(`cannot read ${join(dir, "config.json")}: ${(e as Error).message}`));
  }
  const arch = parseArchitecture(config);
  if (!arch.ok) return arch;

  let shardOf: Map<string, string>;
  try {
    const index = (await readJson(join(dir, "model.safetensors.index.json")).catch(() => null)) as {
      weight_map?: Record<string, string>;
    } | null;
    if (index !== null) {
      if (typeof index.weight_map !== "object" || index.weight_map === null) {
        return err(new CheckpointError("model.safetensors.index.json: weight_map is missing"));
      }
      shardOf = new Map(Object.entries(index.weight_map));
    } else {
      shardOf = new Map();
    }
  } catch (e) {
    return err(new CheckpointError(`model.safetensors.index.json: ${(e as Error).message}`));
  }

  const files = shardOf.size > 0 ? [...new Set(shardOf.values())] : ["model.safetensors"];
  const readers = new Map<string, SafetensorsReader>();
  const where = new Map<string, SafetensorsReader>();
  for (const file of files) {
    if (file.includes("/") || file.includes(".."))
      return err(new CheckpointError(`shard name ${file} is not a plain file name`));
    const reader = await openSafetensors(join(dir, file));
    if (!reader.ok) {
      await Promise.all([...readers.values()].map((r) => r.close()));
      return err(new CheckpointError(`${file}: ${reader.error.message}`, { cause: reader.error }));
    }
    readers.set(file, reader.value);
    for (const name of reader.value.entries.keys()) where.set(name, reader.value);
  }
  for (const [name, file] of shardOf) {
    if (readers.get(file)?.entries.has(name) !== true) {
      return err(
        new CheckpointError(`model.safetensors.index.json maps ${name} to ${file}, which does not hold it`),
      );
    }
  }

  const locate = (name: string): { reader: SafetensorsReader; entry: TensorEntry } => {
    const reader = where.get(name);
    const entry = reader?.entries.get(name);
    if (reader === undefined || entry === undefined)
      throw new CheckpointError(`checkpoint has no tensor ${name}`);
    return { reader, entry };
  };
  return ok({
    dir,
    config: config as Record<string, unknown>,
    arch: arch.value,
    has: (name) => where.has(name),
    entry: (name) => locate(name).entry,
    async readFloat32(name) {
      const { reader, entry } = locate(name);
      if (!["F32", "F16", "BF16", "F64"].includes(entry.dtype)) {
        throw new CheckpointError(`tensor ${name} has dtype ${entry.dtype}; expected a float type`);
      }
      return toFloat32(entry.dtype, await reader.read(name));
    },
    close: async () => {
      await Promise.all([...readers.values()].map((r) => r.close()));
    },
  });
}
