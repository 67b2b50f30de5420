/**
 * A local PEFT directory as `lora_path`, for operators who train elsewhere on the same host. Only
 * directories inside GENERATOR_LORA_DIRS are read (real paths, so a symlink cannot lead out), and the
 * adapter is verified exactly as a store version is: config refusals, every key and shape against the
 * base's module map, the rank bound and finite values (`verifyAdapterFiles`).
 */
import { readFile, realpath, stat } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { CONFIG_FILE, WEIGHTS_FILE } from "@loracast/shared/manifest";
import { type ModelSpec, type VerifiedAdapter, verifyAdapterFiles } from "@loracast/shared/model-spec";
import { err, ok, type Result } from "@loracast/shared/result";
import type { LoraFeeds } from "@loracast/shared/runtime";
import { sha256Hex } from "@loracast/shared/store";
import type { ApiError } from "../errors.ts";
import type { LocalAdapter } from "./registry.ts";

/** adapter_config.json is a few hundred bytes; anything near this is not one. */
const MAX_CONFIG_BYTES = 1 << 20;

/** What `loadLocalAdapter` checks a local PEFT directory against: the base, the allowed roots and bounds. */
export interface LocalAdapterDeps {
  spec: ModelSpec;
  /** GENERATOR_LORA_DIRS as configured; empty disables local directories. */
  allowedDirs: readonly string[];
  maxRank: number;
  /** Largest adapter_model.safetensors read, in bytes (the cache's byte bound). */
  maxBytes: number;
  prepare?: (adapter: VerifiedAdapter) => LoraFeeds;
}

/** True when `path` is `root` or lies below it (both real, absolute paths). */
function isInside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

const notFound = (message: string): ApiError => ({ code: "model_not_found", message, param: "lora_path" });
const refused = (message: string): ApiError => ({ code: "bad_request", message, param: "lora_path" });

async function realOrNull(p: string): Promise<string | null> {
  return realpath(p).catch(() => null);
}

/** Reads, bounds and verifies the PEFT directory at `path`; errors name `lora_path`. */
export async function loadLocalAdapter(
  path: string,
  d: LocalAdapterDeps,
): Promise<Result<LocalAdapter, ApiError>> {
  if (d.allowedDirs.length === 0)
    return err(
      refused(
        `${path}: local directories are not enabled on this generator (the operator lists allowed directories in GENERATOR_LORA_DIRS)`,
      ),
    );
  const roots = (await Promise.all(d.allowedDirs.map(realOrNull))).filter((r): r is string => r !== null);
  const dir = await realOrNull(resolve(path));
  if (dir === null) return err(notFound(`No adapter found at ${path}`));
  const root = roots.find((r) => isInside(dir, r));
  if (root === undefined)
    return err(refused(`${path} is outside the directories allowed by GENERATOR_LORA_DIRS`));
  const files: string[] = [];
  for (const [name, limit] of [
    [CONFIG_FILE, MAX_CONFIG_BYTES],
    [WEIGHTS_FILE, d.maxBytes],
  ] as const) {
    const file = await realOrNull(resolve(dir, name));
    if (file === null) return err(notFound(`No adapter found at ${path}: ${name} is missing`));
    if (!isInside(file, root))
      return err(refused(`${path}/${name} leads outside the directories allowed by GENERATOR_LORA_DIRS`));
    const info = await stat(file).catch(() => null);
    if (info === null || !info.isFile()) return err(refused(`${path}/${name} is not a readable file`));
    if (info.size > limit) return err(refused(`${path}/${name} has ${info.size} bytes; at most ${limit}`));
    files.push(file);
  }
  const read = await Promise.all(files.map((f) => readFile(f).catch(() => null)));
  const [configBytes, weights] = read;
  if (configBytes == null || weights == null) return err(refused(`${path}: its files cannot be read`));
  const checked = verifyAdapterFiles(d.spec, new TextDecoder().decode(configBytes), new Uint8Array(weights), {
    maxRank: d.maxRank,
  });
  if (!checked.ok)
    return err({ code: "adapter_failed", message: `${path}: ${checked.error}`, param: "lora_path" });
  return ok({
    path: dir,
    sha256: sha256Hex(weights),
    bytes: weights.byteLength,
    feeds: d.prepare?.(checked.value.verified) ?? null,
  });
}
