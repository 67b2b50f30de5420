/**
 * Adapter swaps on one generator lifecycle (the real AdapterManager, with an in-memory object store
 * standing in for S3, which this benchmark does not measure) and one decoder session: each version
 * is staged (pulled, verified, feeds built), then activated by its webhook event and served for one
 * short generation. Activation time is the event's handling with the version already staged.
 */

import { formatVersionRef } from "@loracast/shared/manifest";
import type { ModelSpec } from "@loracast/shared/model-spec";
import { createLogger, systemClock } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { adapterFeeds, type DecoderSession, Engine, GREEDY, sessionsCreated } from "@loracast/shared/runtime";
import { AdapterStore, MemoryObjectStore } from "@loracast/shared/store";
import { AdapterManager } from "../../../services/generator/src/lifecycle/index.ts";
import type { AdapterFiles } from "../../helpers/adapters.ts";

const RUN = "bench";

export interface SwapReport {
  swaps: number;
  activationMs: { p50: number; p99: number; max: number };
  sessionsCreated: number;
  /** [swap number, RSS in MB] after a collection, every `every` swaps. */
  rss: [number, number][];
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

export async function measureSwaps(
  session: DecoderSession,
  spec: ModelSpec,
  payloads: AdapterFiles[],
  swaps: number,
  every: number,
): Promise<SwapReport> {
  const store = new AdapterStore(new MemoryObjectStore());
  const manager = new AdapterManager({
    store,
    spec,
    clock: systemClock,
    log: createLogger({}, { write: () => {} }),
    bounds: { maxVersions: 4, maxBytes: 1024 * 1024 * 1024 },
    maxRank: 64,
    runs: [RUN],
    // As the generator does: packed for the fused graph when staged.
    prepare: (adapter) => session.prepare(adapterFeeds(spec, adapter)),
  });
  const engine = new Engine(session, { maxBatch: 1 });
  const sessionsBefore = sessionsCreated();
  const times: number[] = [];
  const rss: [number, number][] = [];
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let v = 1; v <= swaps; v++) {
    const files = payloads[v % payloads.length] as AdapterFiles;
    const published = await store.publishAdapter(RUN, {
      configBytes: files.config,
      weights: files.weights,
      draft: {
        createdAt: new Date(systemClock.now()).toISOString(),
        base: { fingerprint: spec.fingerprint },
        probe: null,
        training: null,
        publisher: { service: "bench", instance: "bench" },
      },
    });
    const staged = await manager.ensure(RUN, v);
    if (!staged.ok) throw new Error(`version ${v} did not stage: ${staged.error.message}`);
    const t0 = performance.now();
    await manager.handleEvent({
      type: "adapter.published",
      run: RUN,
      version: v,
      manifestKey: published.key,
      manifestSha256: published.sha256,
    });
    times.push(performance.now() - t0);
    const active = manager.activeRecord(RUN);
    if (active?.version !== v || active.adapter?.feeds == null) throw new Error(`version ${v} is not active`);
    const release = manager.pin(active);
    await engine.generate({
      prompt: [1, 2, 3, 4, 5, 6, 7, 8],
      adapter: { key: formatVersionRef(RUN, v), feeds: active.adapter.feeds },
      sampling: GREEDY,
      maxTokens: 2,
      stopTokens: new Set(),
      logprobs: null,
      rng: createRng(v),
    });
    release();
    if (v % every === 0) {
      gc?.();
      rss.push([v, process.memoryUsage().rss / 2 ** 20]);
    }
  }
  const sorted = [...times].sort((a, b) => a - b);
  return {
    swaps,
    activationMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? 0 },
    sessionsCreated: sessionsCreated() - sessionsBefore,
    rss,
  };
}
