/**
 * Test support for the lifecycle's unit tests: the demo base's module map, adapters published to an
 * in-memory store (the store fake), a clock the test moves, a logger that keeps its lines, and an
 * `AdapterManager` over them. Imported by the `*.test.ts` files of this folder only.
 */
import { readFileSync } from "node:fs";
import { DEMO_BASE_CONFIG } from "@loracast/dev-support/fixtures";
import type { AdapterEvent } from "@loracast/shared/manifest";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { createLogger, type Logger } from "@loracast/shared/platform";
import { encodeSafetensors } from "@loracast/shared/safetensors";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import { AdapterStore, MemoryObjectStore, type StoredManifest } from "@loracast/shared/store";
import { AdapterManager } from "./adapter-manager.ts";
import type { ManagerDeps } from "./types.ts";

const dims = parseDecoderDims(JSON.parse(readFileSync(DEMO_BASE_CONFIG, "utf8")));
if (!dims.ok) throw dims.error;
/** The demo base's module map (hidden size 64, 2 layers): what every fixture adapter is verified against. */
export const spec = buildModelSpec(dims.value);

/** A probe as a manifest carries it: token rows and the trainer's next-token log-probabilities. */
type Probe = { tokens: number[][]; logprobs: number[][] };

/**
 * The two PEFT files of a rank-2 `q_proj` LoRA on both layers of the demo base, every factor value
 * `seed` (float32); `rows` is lora_A's row count (2; another count does not fit the base).
 */
export function adapterFiles(seed: number, rows = 2): { configBytes: Uint8Array; weights: Uint8Array } {
  const tensors = Object.fromEntries(
    [0, 1].flatMap((l) => [
      [
        `base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`,
        { dtype: "F32" as const, shape: [rows, 64], data: new Float32Array(rows * 64).fill(seed) },
      ],
      [
        `base_model.model.model.layers.${l}.self_attn.q_proj.lora_B.weight`,
        { dtype: "F32" as const, shape: [64, 2], data: new Float32Array(128).fill(seed) },
      ],
    ]),
  );
  const config = { peft_type: "LORA", r: 2, target_modules: ["q_proj"] };
  return {
    configBytes: new TextEncoder().encode(JSON.stringify(config)),
    weights: encodeSafetensors(tensors),
  };
}

/** Publishes `adapterFiles(seed)` as `run`'s next version, with `probe` and base `fingerprint` when given. */
export function publish(
  store: AdapterStore,
  run: string,
  seed: number,
  probe: Probe | null = null,
  fingerprint: string | null = null,
): Promise<StoredManifest> {
  return store.publishAdapter(run, {
    ...adapterFiles(seed),
    draft: {
      createdAt: "2026-01-01T00:00:00.000Z",
      base: { fingerprint },
      probe,
      training: null,
      publisher: { service: "test", instance: "t" },
    },
  });
}

/** The webhook event announcing `stored` (a version of `stored.manifest.run`) as published. */
export function published(
  stored: StoredManifest,
  type: AdapterEvent["type"] = "adapter.published",
): AdapterEvent {
  const { run, version } = stored.manifest;
  return { type, run, version, manifestKey: stored.key, manifestSha256: stored.sha256 };
}

/** Writes a rollback record of `run` from `atVersion` back to `to`, as the trainer writes it. */
export function rollback(store: AdapterStore, to: number, atVersion: number, run = "r") {
  return store.writeRollback({
    schema: "loracast.rollback/v1",
    run,
    to,
    atVersion,
    createdAt: "2026-01-01T00:00:00.000Z",
  });
}

/** A clock the test moves by setting `t` (epoch ms). */
export function testClock(t = 10_000): { t: number; now: () => number } {
  const clock = { t, now: () => clock.t };
  return clock;
}

/** A logger that keeps every line it writes, parsed. */
export function keptLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger({}, { write: (l) => lines.push(JSON.parse(l)) }), lines };
}

/** A trainer's store (signs) and a generator's (requires its signatures) over one in-memory bucket. */
export function signedStores(): { objects: MemoryObjectStore; trainer: AdapterStore; reader: AdapterStore } {
  const objects = new MemoryObjectStore();
  const signer = Signer.generate();
  const trusted = new TrustedKeys([signer.publicKey]);
  return {
    objects,
    trainer: new AdapterStore(objects, { signer, trusted }),
    reader: new AdapterStore(objects, { trusted }),
  };
}

/**
 * An `AdapterManager` on `store` with a test clock (moved through the returned `clock`), a kept
 * log, the demo base, no engine, bounds of 4 versions and 1 MB, and every run followed; `over`
 * replaces any of those.
 */
export function managerFor(store: AdapterStore, over: Partial<ManagerDeps> = {}) {
  const clock = testClock();
  const { log, lines } = keptLog();
  const m = new AdapterManager({
    store,
    spec,
    clock,
    log,
    bounds: { maxVersions: 4, maxBytes: 1e6 },
    maxRank: 64,
    runs: null,
    ...over,
  });
  return { m, clock, lines };
}

/** A fresh in-memory bucket and an unsigned store over it. */
export function memoryStore(): { objects: MemoryObjectStore; store: AdapterStore } {
  const objects = new MemoryObjectStore();
  return { objects, store: new AdapterStore(objects) };
}
