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
  type BaseGraphMode,
  baseFeeds,
  DecoderSession,
  type LoraFeeds,
  type OrtBackend,
  type StepInput,
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
 * `kvCacheDtype` (default `float32`; `float16` needs `gqa`) and the session's `baseGraph` (default
 * `auto`: off on the CPU); the caller must `dispose()` it (the test runner checks the temp dir).
 */
export async function loadTinyModel(
  attention: DecoderAttention = "ops",
  backend: OrtBackend = "auto",
  kvCacheDtype: KvCacheDtype = "float32",
  baseGraph: BaseGraphMode = "auto",
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
  const loaded = await DecoderSession.load(work, { backend, baseGraph });
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

/**
 * One row's prefill with no past: `tokens` at positions 0… with no padding, and the logits at
 * `logitsAt` (positions within `tokens`; by default the last one, the next token's).
 */
export function prefillStep(
  tokens: readonly number[],
  logitsAt: readonly number[] = [tokens.length - 1],
): StepInput {
  const ids = (xs: readonly number[]) => BigInt64Array.from(xs, BigInt);
  return {
    batch: 1,
    seq: tokens.length,
    inputIds: ids(tokens),
    attentionMask: new BigInt64Array(tokens.length).fill(1n),
    positionIds: ids(tokens.map((_, i) => i)),
    logitsPositions: ids(logitsAt),
    logitsCount: logitsAt.length,
    past: null,
  };
}

/** One row's decode step: `token` at position `at` over `past`, the next token's logits. */
function decodeStep(token: number, at: number, past: StepInput["past"]): StepInput {
  return {
    batch: 1,
    seq: 1,
    inputIds: BigInt64Array.of(BigInt(token)),
    attentionMask: new BigInt64Array(at + 1).fill(1n),
    positionIds: BigInt64Array.of(BigInt(at)),
    logitsPositions: BigInt64Array.of(0n),
    logitsCount: 1,
    past,
  };
}

/**
 * The logits of a prefill of `prompt` and then `steps` decode steps of fixed tokens (not sampled:
 * every session sees the same inputs), freeing each cache after use: one array per step.
 */
export async function decodeFixedTokens(
  session: DecoderSession,
  feeds: LoraFeeds,
  prompt: readonly number[],
  steps: number,
): Promise<Float32Array[]> {
  let out = await session.step(prefillStep(prompt), feeds);
  const logits = [out.logits];
  for (let s = 0; s < steps; s++) {
    const was = out.present;
    out = await session.step(decodeStep((s * 37 + 11) % 256, prompt.length + s, was), feeds);
    session.free(was);
    logits.push(out.logits);
  }
  session.free(out.present);
  return logits;
}
