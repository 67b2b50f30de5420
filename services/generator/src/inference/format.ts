/** OpenAI response pieces: logprobs in the completions and chat shapes, usage, ids. */
import type { SampledToken } from "@loracast/shared/runtime";
import type { TextTokenizer } from "@loracast/shared/tokenizer";

const utf8 = new TextEncoder();

export function completionLogprobs(tokens: readonly SampledToken[], tok: TextTokenizer, startOffset = 0) {
  let offset = startOffset;
  const text = (id: number) => tok.decode([id]);
  const out = {
    tokens: [] as string[],
    token_logprobs: [] as (number | null)[],
    top_logprobs: [] as Record<string, number>[],
    text_offset: [] as number[],
  };
  for (const t of tokens) {
    const s = text(t.token);
    out.tokens.push(s);
    out.token_logprobs.push(t.logprob);
    out.top_logprobs.push(Object.fromEntries(t.top.map((a) => [text(a.token), a.logprob])));
    out.text_offset.push(offset);
    offset += s.length;
  }
  return out;
}

export function chatLogprobs(tokens: readonly SampledToken[], tok: TextTokenizer) {
  const entry = (id: number, logprob: number | null) => {
    const token = tok.decode([id]);
    return { token, logprob, bytes: [...utf8.encode(token)] };
  };
  return {
    content: tokens.map((t) => ({
      ...entry(t.token, t.logprob),
      top_logprobs: t.top.map((a) => entry(a.token, a.logprob)),
    })),
  };
}

export function usage(promptTokens: number, completionTokens: number) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/**
 * vLLM's `prompt_logprobs`: one entry per prompt token, null for the first (nothing precedes it),
 * else token id → `{logprob, rank, decoded_token}` for the prompt's token and the top alternatives.
 * `rank` is 1-based among the alternatives, null for a prompt token outside them.
 */
export function promptLogprobs(tokens: readonly SampledToken[], tok: TextTokenizer) {
  return tokens.map((t, i) => {
    if (i === 0 || t.logprob === null) return null;
    const entries: Record<string, { logprob: number; rank: number | null; decoded_token: string }> = {};
    entries[String(t.token)] = {
      logprob: t.logprob,
      rank: (() => {
        const at = t.top.findIndex((a) => a.token === t.token);
        return at < 0 ? null : at + 1;
      })(),
      decoded_token: tok.decode([t.token]),
    };
    t.top.forEach((a, r) => {
      entries[String(a.token)] = { logprob: a.logprob, rank: r + 1, decoded_token: tok.decode([a.token]) };
    });
    return entries;
  });
}
