/**
 * Reward functions: the built-ins and an HTTP endpoint. A sample's reward is the weighted sum over
 * the run's functions. An HTTP reward that stays down past its retries either fails the step or,
 * with `onError: "skip"`, gives NaN, which the advantages skip and the step's metrics count.
 */
import pRetry from "p-retry";
import { TrainerError } from "../errors.ts";
import type { RewardSpec } from "./config.ts";
import { compileRewardPattern } from "./reward-pattern.ts";

/** One completion to score: its prompt and text, its length in tokens, and the dataset's answer. */
export interface ScoredSample {
  prompt: string;
  completion: string;
  completionTokens: number;
  answer: string | null;
}

/** A reward function: a completion's reward (a number, NaN when none); rejects when it cannot score. */
export type RewardFn = (s: ScoredSample, signal: AbortSignal) => Promise<number>;

function lastNumber(text: string): number | null {
  const all = text.match(/-?\d+(?:\.\d+)?/g);
  const last = all?.at(-1);
  return last === undefined ? null : Number(last);
}

function regexReward(pattern: string, mode: "match" | "fraction"): RewardFn {
  // The run's config passed the same check at creation (config.ts), also when it resumes.
  const compiled = compileRewardPattern(pattern);
  if (!compiled.ok)
    throw new TrainerError("invalid_config", `regex reward pattern: ${compiled.error.message}`);
  const re = compiled.value;
  return async (s) => {
    const m = re.matcher(s.completion);
    if (mode === "match") return m.find() ? 1 : 0;
    const chars = [...s.completion].length;
    if (chars === 0) return 0;
    let matched = 0;
    while (m.find()) matched += [...(m.group() ?? "")].length;
    return matched / chars;
  };
}

function httpReward(spec: Extract<RewardSpec, { type: "http" }>, fetch: typeof globalThis.fetch): RewardFn {
  return async (s, signal) => {
    try {
      return await pRetry(
        async () => {
          const res = await fetch(spec.url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ prompt: s.prompt, completion: s.completion, answer: s.answer }),
            signal: AbortSignal.any([signal, AbortSignal.timeout(spec.timeoutMs)]),
          });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const body = (await res.json()) as { reward?: unknown };
          if (typeof body.reward !== "number") throw new Error("response has no numeric `reward`");
          return body.reward;
        },
        { retries: spec.retries, minTimeout: 100, maxTimeout: 2000, signal },
      );
    } catch (e) {
      if (signal.aborted) throw e;
      if (spec.onError === "skip") return Number.NaN;
      throw new TrainerError("reward_failed", `reward endpoint ${spec.url}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  };
}

function rewardFn(spec: RewardSpec, fetch: typeof globalThis.fetch): RewardFn {
  switch (spec.type) {
    case "exact_match":
      return async (s) => (s.answer !== null && s.completion.trim() === s.answer.trim() ? 1 : 0);
    case "regex":
      return regexReward(spec.pattern, spec.mode);
    case "numeric_answer":
      return async (s) => {
        const got = lastNumber(s.completion);
        const want = s.answer === null ? null : Number(s.answer);
        return got !== null && want !== null && Math.abs(got - want) <= spec.tolerance ? 1 : 0;
      };
    case "length_penalty":
      return async (s) => -Math.max(0, s.completionTokens - spec.target) / spec.target;
    case "json_valid":
      return async (s) => {
        try {
          JSON.parse(s.completion);
          return 1;
        } catch {
          return 0;
        }
      };
    case "http":
      return httpReward(spec, fetch);
  }
}

/**
 * The weighted reward of each sample; NaN where a skipped HTTP reward gave none. HTTP rewards call
 * through `fetch` (the trainer passes its egress-checked one).
 */
export function rewardModel(specs: readonly RewardSpec[], fetch: typeof globalThis.fetch) {
  const fns = specs.map((s) => ({ fn: rewardFn(s, fetch), weight: s.weight }));
  return async (samples: readonly ScoredSample[], signal: AbortSignal): Promise<number[]> =>
    Promise.all(
      samples.map(async (s) => {
        let total = 0;
        for (const { fn, weight } of fns) total += weight * (await fn(s, signal));
        return total;
      }),
    );
}
