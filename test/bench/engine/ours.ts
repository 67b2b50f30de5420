/**
 * Throughput of our engine, and of the transformers.js peer, measured the same way: a batch
 * generates 64 tokens per row; prefill is the time to the first token, decode the time from there
 * to the last. The variants take turns, one generation each per round, so that a slow minute of
 * this shared machine lands on all of them; each figure is the median over the rounds.
 */
import { createRng } from "@loracast/shared/random";
import { type DecoderSession, Engine, GREEDY, type LoraFeeds } from "@loracast/shared/runtime";

export const PROMPT_LEN = 128;
export const NEW_TOKENS = 64;

export interface Throughput {
  prefill: number;
  decode: number;
}

/** Prompt `i` of a batch: distinct, deterministic token ids well inside the vocabulary. */
export const prompt = (i: number): number[] =>
  Array.from({ length: PROMPT_LEN }, (_, j) => 1000 + ((i * 7919 + j * 104729) % 100000));

/** Wall times, in ms from the start, of a batch's first new token and of its last. */
export interface GenerationTimes {
  firstToken: number;
  end: number;
}

/** Generates `tokens` new tokens for each of `batch` rows. */
export type TimedGeneration = (batch: number, tokens: number) => Promise<GenerationTimes>;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/** Throughput of each variant at `batch`, measured in `rounds` interleaved rounds. */
export async function throughputs(
  variants: ReadonlyMap<string, TimedGeneration>,
  batch: number,
  rounds: number,
): Promise<Map<string, Throughput>> {
  // warm-up: first-run allocations and kernel selection
  for (const generate of variants.values()) await generate(batch, 4);
  const runs = new Map<string, Throughput[]>([...variants.keys()].map((k) => [k, []]));
  for (let i = 0; i < rounds; i++) {
    for (const [name, generate] of variants) {
      const t = await generate(batch, NEW_TOKENS);
      runs.get(name)?.push({
        prefill: (batch * PROMPT_LEN) / (t.firstToken / 1000),
        decode: (batch * (NEW_TOKENS - 1)) / ((t.end - t.firstToken) / 1000),
      });
    }
  }
  return new Map(
    [...runs].map(([name, rs]) => [
      name,
      { prefill: median(rs.map((r) => r.prefill)), decode: median(rs.map((r) => r.decode)) },
    ]),
  );
}

/** Greedy generation of `tokens` new tokens for each of `batch` prompts; `onToken` on every token. */
export async function generateBatch(
  session: DecoderSession,
  feeds: LoraFeeds,
  batch: number,
  tokens: number,
  onToken: () => void,
): Promise<void> {
  const engine = new Engine(session, { maxBatch: batch });
  await Promise.all(
    Array.from({ length: batch }, (_, i) =>
      engine.generate({
        prompt: prompt(i),
        adapter: { key: "bench", feeds },
        sampling: GREEDY,
        maxTokens: tokens,
        stopTokens: new Set(),
        logprobs: null,
        rng: createRng(i),
        onToken,
      }),
    ),
  );
}

export function engineGeneration(session: DecoderSession, feeds: LoraFeeds): TimedGeneration {
  return async (batch, tokens) => {
    const t0 = performance.now();
    let firstToken = 0;
    await generateBatch(session, feeds, batch, tokens, () => {
      firstToken ||= performance.now() - t0;
    });
    return { firstToken, end: performance.now() - t0 };
  };
}

/** Our greedy continuation of prompt 0, for comparing with the peer's. */
export async function greedyTokens(session: DecoderSession, feeds: LoraFeeds, n: number): Promise<number[]> {
  const engine = new Engine(session, { maxBatch: 1 });
  const r = await engine.generate({
    prompt: prompt(0),
    adapter: { key: "bench", feeds },
    sampling: GREEDY,
    maxTokens: n,
    stopTokens: new Set(),
    logprobs: null,
    rng: createRng(0),
  });
  return r.tokens.map((t) => t.token);
}
