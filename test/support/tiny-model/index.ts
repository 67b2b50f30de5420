/**
 * The llama-tiny reference fixture (256-token vocabulary) built to fp32 artifacts in a temp dir,
 * with its PEFT adapter as feeds: the model the runtime's tests decode with.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildArtifacts, type DecoderAttention } from "@loracast/shared/model-builder";
import type { KvCacheDtype } from "@loracast/shared/model-format";
import { verifyAdapterFiles } from "@loracast/shared/model-spec";
import {
  adapterFeeds,
  baseFeeds,
  DecoderSession,
  type LoraFeeds,
  type OrtBackend,
} from "@loracast/shared/runtime";
import { fixture } from "../fixtures/index.ts";

const FIXTURE = fixture("llama-tiny");

/** llama-tiny loaded for decoding, with its adapter's feeds and the base's (zero) feeds. */
export interface TinyModel {
  session: DecoderSession;
  /** The fixture's adapter. */
  lora: LoraFeeds;
  /** No adapter (zero factors). */
  base: LoraFeeds;
  /** Releases the session and removes the artifacts. */
  dispose(): Promise<void>;
}

/**
 * Builds and loads llama-tiny with the decoder's `attention` (default `ops`) on the ORT binding
 * `backend` (default `auto`: the stock one on the CPU), with the KV cache element type
 * `kvCacheDtype` (default `float32`; `float16` needs `gqa`); the caller must `dispose()` it (the test
 * runner checks the temp dir).
 */
export async function loadTinyModel(
  attention: DecoderAttention = "ops",
  backend: OrtBackend = "auto",
  kvCacheDtype: KvCacheDtype = "float32",
): Promise<TinyModel> {
  const work = mkdtempSync(join(tmpdir(), "loracast-engine-"));
  const built = await buildArtifacts({
    checkpointDir: join(FIXTURE, "base"),
    outDir: work,
    quant: { kind: "fp32" },
    attention,
    kvCacheDtype,
  });
  assert.ok(built.ok);
  const loaded = await DecoderSession.load(work, { backend });
  assert.ok(loaded.ok, loaded.ok ? "" : loaded.error.message);
  const session = loaded.value;
  const checked = verifyAdapterFiles(
    session.spec,
    await readFile(join(FIXTURE, "adapter", "adapter_config.json"), "utf8"),
    await readFile(join(FIXTURE, "adapter", "adapter_model.safetensors")),
  );
  assert.ok(checked.ok);
  return {
    session,
    lora: adapterFeeds(session.spec, checked.value.verified),
    base: baseFeeds(session.spec),
    dispose: async () => {
      await session.release();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
