/**
 * Where samples come from. Every request names the exact adapter version it wants, and every
 * rollout reports the version that produced it, so staleness is measured, never assumed.
 * `LocalRollouts` is the embedded default: an in-process engine over the same base, holding the
 * feeds of each version the run published.
 */
import { createRng } from "@loracast/shared/random";
import type { Engine, LoraFeeds } from "@loracast/shared/runtime";

export interface RolloutRequest {
  run: string;
  version: number;
  /** Tokenized prompts; each is sampled `n` times. */
  prompts: readonly (readonly number[])[];
  n: number;
  sampling: { temperature: number; topK: number; topP: number; maxTokens: number };
  stopTokens: readonly number[];
  seed: number;
}

export interface Rollout {
  promptIndex: number;
  completion: number[];
  /** The sampler's log-probability of each completion token (tempered as sampled). */
  logprobs: number[];
  /** "length" when the completion hit maxTokens without a stop token. */
  finishReason: "stop" | "length";
  /** The adapter version that produced it. */
  version: number;
}

export interface RolloutSource {
  readonly kind: string;
  /** Makes a published version's factors available to sample from. */
  offer(version: number, feeds: LoraFeeds): void;
  generate(req: RolloutRequest, signal: AbortSignal): Promise<Rollout[]>;
}

export class LocalRollouts implements RolloutSource {
  readonly kind = "in-process engine";
  private readonly versions = new Map<number, LoraFeeds>();

  constructor(private readonly engine: Engine) {}

  offer(version: number, feeds: LoraFeeds): void {
    this.versions.set(version, feeds);
    // Older versions are never sampled again: the loop always asks for the newest.
    for (const v of this.versions.keys()) if (v < version) this.versions.delete(v);
  }

  async generate(req: RolloutRequest, signal: AbortSignal): Promise<Rollout[]> {
    const feeds = this.versions.get(req.version);
    if (feeds === undefined) throw new Error(`version ${req.version} was not offered to the local engine`);
    const stop = new Set(req.stopTokens);
    const jobs = req.prompts.flatMap((prompt, promptIndex) =>
      Array.from({ length: req.n }, async (_, i): Promise<Rollout> => {
        const r = await this.engine.generate({
          prompt,
          adapter: { key: `${req.run}@${req.version}`, feeds },
          sampling: {
            temperature: req.sampling.temperature,
            topK: req.sampling.topK,
            topP: req.sampling.topP,
            minP: 0,
          },
          maxTokens: req.sampling.maxTokens,
          stopTokens: stop,
          logprobs: 0,
          rng: createRng(req.seed * 65_537 + promptIndex * req.n + i),
          signal,
        });
        return {
          promptIndex,
          completion: r.tokens.map((t) => t.token),
          logprobs: r.tokens.map((t) => t.logprob ?? Number.NaN),
          finishReason: r.finishReason === "length" ? "length" : "stop",
          version: req.version,
        };
      }),
    );
    return Promise.all(jobs);
  }
}
