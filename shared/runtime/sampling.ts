/**
 * Turning one row of logits into a token. Logprobs are those of the tempered distribution,
 * log_softmax(logits / temperature), before top-k/top-p/min-p truncation: the quantity a GRPO
 * trainer recomputes (TRL divides logits by the temperature too), so sampler and trainer agree.
 * Temperature 0 is greedy, with logprobs of the untempered distribution.
 */
import type { Rng } from "../random/index.ts";
import { argmax } from "./logits.ts";

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep the smallest set whose probability reaches p; 1 disables. */
  topP: number;
  /** Drop tokens less likely than minP × the most likely one; 0 disables. */
  minP: number;
  /** OpenAI logit_bias: token id → value added to that token's logit before everything else, [-100, 100]. */
  logitBias?: ReadonlyMap<number, number>;
  /** OpenAI presence_penalty, [-2, 2]; 0 disables. Over generated tokens only (OpenAI, vLLM). */
  presencePenalty?: number;
  /** OpenAI frequency_penalty, [-2, 2]; 0 disables. Over generated tokens only. */
  frequencyPenalty?: number;
  /** vLLM repetition_penalty (> 0, 1 disables), CTRL-style, over prompt and generated tokens. */
  repetitionPenalty?: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0 };

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampledToken {
  token: number;
  /** log_softmax(logits / temperature) at `token`; null when greedy decoding did not ask for it. */
  logprob: number | null;
  /** The most likely alternatives, best first (as many as asked for). */
  top: TokenLogprob[];
}

/** Tokens below this share of the best one are never candidates; their total mass is < V·1e-12. */
const NEGLIGIBLE = 1e-12;

/**
 * Samples one token. `logprobs` is null when the caller wants no logprobs: greedy decoding then
 * costs one pass over the vocabulary instead of three, which is most of the per-token host work.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  logprobs: number | null,
): SampledToken {
  const vocab = logits.length;
  const best = argmax(logits);
  const max = logits[best] ?? Number.NEGATIVE_INFINITY;
  if (params.temperature === 0 && logprobs === null) return { token: best, logprob: null, top: [] };
  const t = params.temperature > 0 ? params.temperature : 1;
  let sum = 0;
  for (let j = 0; j < vocab; j++) sum += Math.exp(((logits[j] ?? 0) - max) / t);
  const lse = Math.log(sum);
  const logprob = (j: number) => ((logits[j] ?? 0) - max) / t - lse;
  const token = params.temperature > 0 ? sample(logits, params, rng, max, logprob) : best;
  return { token, logprob: logprob(token), top: topTokens(logits, logprobs ?? 0, logprob) };
}

/**
 * Inverse-CDF sampling over the candidates that survive min-p, top-k and top-p. Only top-k and
 * top-p need the candidates in order; without them the walk goes in vocabulary order, which draws
 * from the same distribution without sorting the whole vocabulary.
 */
function sample(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  max: number,
  logprob: (j: number) => number,
): number {
  const floor = Math.log(Math.max(NEGLIGIBLE, params.minP)) * params.temperature + max;
  const candidates: number[] = [];
  for (let j = 0; j < logits.length; j++) if ((logits[j] ?? 0) >= floor) candidates.push(j);
  let keep = candidates.length;
  if (params.topK > 0 || params.topP < 1) {
    candidates.sort((a, b) => (logits[b] ?? 0) - (logits[a] ?? 0) || a - b);
    if (params.topK > 0) keep = Math.min(keep, params.topK);
    if (params.topP < 1) {
      let cum = 0;
      for (let i = 0; i < keep; i++) {
        cum += Math.exp(logprob(candidates[i] ?? 0));
        if (cum >= params.topP) {
          keep = i + 1;
          break;
        }
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += Math.exp(logprob(candidates[i] ?? 0));
  let u = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    u -= Math.exp(logprob(candidates[i] ?? 0));
    if (u < 0) return candidates[i] ?? 0;
  }
  return candidates[keep - 1] ?? 0;
}

function topTokens(logits: Float32Array, k: number, logprob: (j: number) => number): TokenLogprob[] {
  if (k <= 0) return [];
  const best: number[] = [];
  for (let j = 0; j < logits.length; j++) {
    const v = logits[j] ?? Number.NEGATIVE_INFINITY;
    if (best.length === k && v <= (logits[best[k - 1] ?? 0] ?? 0)) continue;
    let at = best.length;
    while (at > 0 && v > (logits[best[at - 1] ?? 0] ?? 0)) at--;
    best.splice(at, 0, j);
    if (best.length > k) best.pop();
  }
  return best.map((token) => ({ token, logprob: logprob(token) }));
}
