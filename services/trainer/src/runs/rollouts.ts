/**
 * Where samples come from. Every request names the exact adapter version it wants, and every
 * rollout reports the version that produced it, so staleness is measured, never assumed.
 * `LocalRollouts` is the embedded default: an in-process engine over the same base, holding the
 * feeds of each version the run published. `FleetRollouts` samples from the generators.
 */
import { createRng } from "@loracast/shared/random";
import type { Engine, LoraFeeds } from "@loracast/shared/runtime";
import pRetry, { AbortError } from "p-retry";
import { TrainerError } from "../errors.ts";

/** One step's sampling request: every prompt `n` times from version `version` of `run`. */
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

/** One sampled completion, in token ids. */
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

/** Where a run loop samples from: the in-process engine or the generator fleet. */
export interface RolloutSource {
  /** Makes a published version's factors available to sample from. */
  offer(version: number, feeds: LoraFeeds): void;
  /**
   * `req.n` completions per prompt, grouped by prompt in prompt order. Throws TrainerError
   * `generators_unavailable` when the fleet stays down past its retries, `internal` when a
   * generator answers from another version.
   */
  generate(req: RolloutRequest, signal: AbortSignal): Promise<Rollout[]>;
}

/** Rollouts from an in-process engine over the trainer's base, seeded per prompt and sample. */
export class LocalRollouts implements RolloutSource {
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

/** The run config's `generators` section, with the fetch the calls go through. */
export interface FleetOptions {
  urls: readonly string[];
  /** The egress-checked fetch (egressFetch): generator URLs pass the trainer's egress policy. */
  fetch: typeof fetch;
  timeoutMs: number;
  retries: number;
}

interface CompletionChoice {
  index: number;
  token_ids?: number[];
  logprobs: { token_logprobs: (number | null)[] } | null;
  finish_reason: string;
}

/**
 * Rollouts through the generators' OpenAI API: one `/v1/completions` call per prompt with `n`
 * samples, spread round-robin over the fleet, naming `<run>@<version>` exactly (a generator pulls
 * a version it has not loaded yet). A response from any other version is refused, never trained on.
 */
export class FleetRollouts implements RolloutSource {
  constructor(private readonly o: FleetOptions) {}

  offer(): void {
    // Versions reach the fleet through the store and webhooks, not through the trainer's memory.
  }

  private async complete(url: string, body: Record<string, unknown>, signal: AbortSignal) {
    return pRetry(
      async () => {
        const res = await this.o.fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.timeoutMs)]),
        });
        const text = await res.text();
        if (res.status >= 500 || res.status === 404)
          throw new Error(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
        if (!res.ok) throw new AbortError(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
        return JSON.parse(text) as { model: string; choices: CompletionChoice[] };
      },
      { retries: this.o.retries, minTimeout: 200, maxTimeout: 3000, signal },
    );
  }

  async generate(req: RolloutRequest, signal: AbortSignal): Promise<Rollout[]> {
    const model = `${req.run}@${req.version}`;
    const perPrompt = await Promise.all(
      req.prompts.map(async (prompt, promptIndex) => {
        const url = this.o.urls[promptIndex % this.o.urls.length] as string;
        let body: { model: string; choices: CompletionChoice[] };
        try {
          body = await this.complete(
            url,
            {
              model,
              prompt,
              n: req.n,
              max_tokens: req.sampling.maxTokens,
              temperature: req.sampling.temperature,
              top_p: req.sampling.topP,
              top_k: req.sampling.topK,
              seed: req.seed * 65_537 + promptIndex,
              logprobs: 0,
              return_token_ids: true,
              stop_token_ids: req.stopTokens,
            },
            signal,
          );
        } catch (e) {
          if (signal.aborted) throw e;
          throw new TrainerError("generators_unavailable", `rollouts for ${model}: ${(e as Error).message}`, {
            cause: e,
          });
        }
        if (body.model !== model) {
          throw new TrainerError(
            "internal",
            `${url} answered with ${body.model}, not the requested ${model}`,
          );
        }
        return body.choices.map(
          (c): Rollout => ({
            promptIndex,
            completion: c.token_ids ?? [],
            logprobs: (c.logprobs?.token_logprobs ?? []).map((l) => l ?? Number.NaN),
            finishReason: c.finish_reason === "length" ? "length" : "stop",
            version: req.version,
          }),
        );
      }),
    );
    return perPrompt.flat();
  }
}
