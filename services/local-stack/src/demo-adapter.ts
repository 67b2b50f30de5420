/**
 * The demo's final adapter as a PEFT directory (`adapter_config.json` + `adapter_model.safetensors`,
 * what PEFT's `save_pretrained` writes), so there is an adapter for the demo base at hand to load
 * elsewhere or to publish again through the trainer's upload API.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type AdapterStore, manifestKey } from "@loracast/shared/store";
import { DemoError } from "./demo-run.ts";

/** Reads `run@version` from the store, checks every blob's sha256, and writes the files into `dir`. */
export async function saveAdapter(
  store: AdapterStore,
  run: string,
  version: number,
  dir: string,
): Promise<void> {
  const read = await store.readManifest(manifestKey(run, version));
  if (read === null) throw new DemoError(`${run}@${version} is not in the store`);
  if (!read.ok) throw new DemoError(read.error.reason);
  const { adapter } = read.value.manifest;
  const files = new Map<string, Uint8Array>();
  for (const file of adapter.files) {
    const blob = await store.downloadBlob(file);
    if (!blob.ok) throw new DemoError(blob.error.reason);
    files.set(file.name, blob.value);
  }
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) {
    await writeFile(join(dir, `${name}.tmp`), bytes);
    await rename(join(dir, `${name}.tmp`), join(dir, name));
  }
}
