/**
 * Turning one row of logits into a token. Logprobs are those of the tempered distribution,
 * log_softmax(logits / temperature), before top-k/top-p/min-p truncation: the quantity a GRPO
 * trainer recomputes (TRL divides logits by the temperature too), so sampler and trainer agree.
 * Temperature 0 is greedy, with logprobs of the untempered distribution.
 */
import type { Rng } from "../random/index.ts";

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep the smallest set whose probability reaches p; 1 disables. */
  topP: number;
  /** Drop tokens less likely than minP × the most likely one; 0 disables. */
  minP: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0 };

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampledToken extends TokenLogprob {
  /** The most likely alternatives, best first (as many as asked for). */
  top: TokenLogprob[];
}

/** Tokens below this share of the best one are never candidates; their total mass is < V·1e-12. */
const NEGLIGIBLE = 1e-12;

export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  topLogprobs = 0,
): SampledToken {
  const vocab = logits.length;
  const t = params.temperature > 0 ? params.temperature : 1;
  let max = Number.NEGATIVE_INFINITY;
  let argmax = 0;
  for (let j = 0; j < vocab; j++) {
    const v = logits[j] ?? Number.NEGATIVE_INFINITY;
    if (v > max) {
      max = v;
      argmax = j;
    }
  }
  let sum = 0;
  for (let j = 0; j < vocab; j++) sum += Math.exp(((logits[j] ?? 0) - max) / t);
  const lse = Math.log(sum);
  const logprob = (j: number) => ((logits[j] ?? 0) - max) / t - lse;

  let token = argmax;
  if (params.temperature > 0) {
    const floor = Math.log(Math.max(NEGLIGIBLE, params.minP));
    const candidates: number[] = [];
    for (let j = 0; j < vocab; j++) if (((logits[j] ?? 0) - max) / t >= floor) candidates.push(j);
    candidates.sort((a, b) => (logits[b] ?? 0) - (logits[a] ?? 0) || a - b);
    let keep = candidates.length;
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
    let mass = 0;
    for (let i = 0; i < keep; i++) mass += Math.exp(logprob(candidates[i] ?? 0));
    let u = rng.next() * mass;
    token = candidates[keep - 1] ?? argmax;
    for (let i = 0; i < keep; i++) {
      u -= Math.exp(logprob(candidates[i] ?? 0));
      if (u < 0) {
        token = candidates[i] ?? argmax;
        break;
      }
    }
  }
  return { token, logprob: logprob(token), top: topTokens(logits, topLogprobs, logprob) };
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
