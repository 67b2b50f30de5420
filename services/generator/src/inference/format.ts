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
