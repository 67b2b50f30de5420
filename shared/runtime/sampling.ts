/**
 * Turning one row of logits into a token, in vLLM's order (vllm/v1/sample/sampler.py,
 * `Sampler.forward`): the logits processors of `logits-processors.ts` first (min_tokens,
 * logit_bias, then the repetition, frequency and presence penalties), then the temperature, then
 * min-p, top-k and top-p truncation.
 *
 * Returned logprobs are those of the processed, tempered distribution,
 * log_softmax(processed logits / temperature), before top-k/top-p/min-p truncation: without
 * processors that is the quantity a GRPO trainer recomputes (TRL divides logits by the
 * temperature too), so sampler and trainer agree; with them, it is the distribution the token
 * was drawn from before truncation. Temperature 0 is greedy, with logprobs of the processed,
 * untempered distribution. Prompt logprobs (`scoreToken`) are of the raw logits instead.
 */
import type { Rng } from "../random/index.ts";
import { argmax } from "./logits.ts";

/**
 * How one sequence turns logits into tokens. The optional fields are the logits processors
 * (`createLogitsProcessors` applies them, in the order listed, before the temperature); absent
 * ones, and their neutral values, leave the logits untouched at no cost.
 */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep the smallest set whose probability reaches p; 1 disables. */
  topP: number;
  /** Drop tokens less likely than minP × the most likely one; 0 disables. */
  minP: number;
  /**
   * OpenAI logit_bias: token id → value added to that token's logit before everything else,
   * [-100, 100] in the API (-100 bans the token, +100 all but forces it). Ids must be in the
   * vocabulary.
   */
  logitBias?: ReadonlyMap<number, number>;
  /**
   * OpenAI presence_penalty, [-2, 2] in the API; 0 disables. Subtracted once from the logit of
   * every token generated so far (generated tokens only, as OpenAI and vLLM count them).
   */
  presencePenalty?: number;
  /**
   * OpenAI frequency_penalty, [-2, 2] in the API; 0 disables. Subtracted from each token's logit
   * as many times as the token was generated so far (generated tokens only).
   */
  frequencyPenalty?: number;
  /**
   * vLLM repetition_penalty (> 0; 1 disables), CTRL-style (Keskar et al. 2019): the logit of a
   * token seen in the prompt or generated so far is divided by it when positive, multiplied by it
   * otherwise.
   */
  repetitionPenalty?: number;
}

/** Greedy decoding: temperature 0 (argmax), no top-k, top-p or min-p filtering. */
export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0 };

/** A token id and its log-probability (natural log). */
export interface TokenLogprob {
  token: number;
  logprob: number;
}

/**
 * One generated (or prompt) token with its logprob and top alternatives, as OpenAI's `logprobs` report it.
 */
export interface SampledToken {
  token: number;
  /**
   * log_softmax(processed logits / temperature) at `token` (the raw logits for a prompt token);
   * null when greedy decoding did not ask for it, and for the first prompt token.
   */
  logprob: number | null;
  /** The most likely alternatives, best first (as many as asked for). */
  top: TokenLogprob[];
}

/** Tokens below this share of the best one are never candidates; their total mass is < V·1e-12. */
const NEGLIGIBLE = 1e-12;

/**
 * Samples one token from `logits`, which the caller has already run through the sequence's
 * logits processors (`LogitsProcessors.apply`): this reads only the temperature and the
 * truncation fields of `params`. `logprobs` is null when the caller wants no logprobs: greedy
 * decoding then costs one pass over the vocabulary instead of three, which is most of the
 * per-token host work.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  logprobs: number | null,
): SampledToken {
  const best = argmax(logits);
  if (params.temperature === 0 && logprobs === null) return { token: best, logprob: null, top: [] };
  const t = params.temperature > 0 ? params.temperature : 1;
  const max = logits[best] ?? Number.NEGATIVE_INFINITY;
  const { logprob, sum } = logSoftmax(logits, max, t);
  const token = params.temperature > 0 ? sample(logits, params, rng, max, sum) : best;
  return { token, logprob: logprob(token), top: topTokens(logits, logprobs ?? 0, logprob) };
}

/**
 * `token` scored by one row of raw logits: log_softmax(logits) at `token`, and the `top` most
 * likely alternatives, best first. No processor and no temperature: what vLLM's prompt_logprobs
 * report for each prompt token given its prefix.
 */
export function scoreToken(logits: Float32Array, token: number, top: number): SampledToken {
  const { logprob } = logSoftmax(logits, logits[argmax(logits)] ?? Number.NEGATIVE_INFINITY, 1);
  return { token, logprob: logprob(token), top: topTokens(logits, top, logprob) };
}

/**
 * j ↦ log_softmax(logits / t)[j], given the largest logit; the sum is accumulated in float64. Each
 * exp((logit - max) / t) is kept in `scratch.exps` for `sample`, which then draws without a second
 * pass of exponentials (the largest host cost per sampled token over a 152k vocabulary).
 */
function logSoftmax(
  logits: Float32Array,
  max: number,
  t: number,
): { logprob: (j: number) => number; sum: number } {
  ensureScratch(logits.length);
  const exps = scratch.exps;
  let sum = 0;
  const n = logits.length;
  for (let j = 0; j < n; j++) {
    const e = Math.exp(((logits[j] as number) - max) / t);
    exps[j] = e;
    sum += e;
  }
  const lse = Math.log(sum);
  return { logprob: (j) => ((logits[j] ?? 0) - max) / t - lse, sum };
}

/**
 * Scratch space of `logSoftmax` and `sample`, grown to the largest vocabulary seen and reused: a row
 * is sampled per sequence per token, and allocating vocabulary-sized arrays each time cost more
 * than the sampling.
 */
const scratch = { candidates: new Int32Array(0), exps: new Float64Array(0), keys: new Float64Array(0) };
const bits = new Uint32Array(1);
const bitsAsFloat = new Float32Array(bits.buffer);

function ensureScratch(n: number): void {
  if (scratch.candidates.length >= n) return;
  scratch.candidates = new Int32Array(n);
  scratch.exps = new Float64Array(n);
  scratch.keys = new Float64Array(n);
}

/**
 * Sorts `candidates[0..count)` by logit, largest first, ties by index, as the comparator
 * `(a, b) => logits[b] - logits[a] || a - b` would (candidates are never NaN): each becomes one
 * float64 key, (order-reversed float32 bits) · 2^indexBits + index, exact below 2^53, so a numeric
 * typed-array sort does it. Over a 152k vocabulary that is ~15× faster than `Array.sort` with the
 * comparator.
 */
function sortByLogit(logits: Float32Array, candidates: Int32Array, count: number): void {
  const indexBits = Math.max(1, Math.ceil(Math.log2(logits.length)));
  if (indexBits > 21) {
    const sorted = Array.from(candidates.subarray(0, count)).sort(
      (a, b) => (logits[b] as number) - (logits[a] as number) || a - b,
    );
    candidates.set(sorted);
    return;
  }
  const scale = 2 ** indexBits;
  const keys = scratch.keys;
  for (let i = 0; i < count; i++) {
    const j = candidates[i] as number;
    // +0 so that -0 and 0 tie, as they do for the comparator.
    bitsAsFloat[0] = (logits[j] as number) + 0;
    const u = bits[0] as number;
    // Float32 bits in ascending order of value: negatives flipped, positives above them.
    const ascending = u >= 0x80000000 ? 0xffffffff - u : u + 0x80000000;
    keys[i] = (0xffffffff - ascending) * scale + j;
  }
  const view = keys.subarray(0, count);
  view.sort();
  for (let i = 0; i < count; i++) candidates[i] = (view[i] as number) % scale;
}

/**
 * Inverse-CDF sampling over the candidates that survive min-p, top-k and top-p, weighted by
 * `logSoftmax`'s exps (`sum` is their total, so exp / sum is a probability). Only top-k and top-p
 * need the candidates in order; without them the walk goes in vocabulary order, which draws from
 * the same distribution without sorting the whole vocabulary.
 */
function sample(logits: Float32Array, params: SamplingParams, rng: Rng, max: number, sum: number): number {
  const floor = Math.log(Math.max(NEGLIGIBLE, params.minP)) * params.temperature + max;
  const { candidates, exps } = scratch;
  const n = logits.length;
  if (params.topK <= 0 && params.topP >= 1) {
    let mass = 0;
    let last = 0;
    for (let j = 0; j < n; j++) {
      if ((logits[j] as number) >= floor) {
        mass += exps[j] as number;
        last = j;
      }
    }
    let u = rng.next() * mass;
    for (let j = 0; j < n; j++) {
      if ((logits[j] as number) < floor) continue;
      u -= exps[j] as number;
      if (u < 0) return j;
    }
    return last;
  }
  let count = 0;
  for (let j = 0; j < n; j++) if ((logits[j] as number) >= floor) candidates[count++] = j;
  sortByLogit(logits, candidates, count);
  let keep = params.topK > 0 ? Math.min(count, params.topK) : count;
  if (params.topP < 1) {
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      cum += (exps[candidates[i] as number] as number) / sum;
      if (cum >= params.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += exps[candidates[i] as number] as number;
  let u = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    u -= exps[candidates[i] as number] as number;
    if (u < 0) return candidates[i] as number;
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
