/**
 * OpenAI response pieces: logprobs in the completions and chat shapes, usage, system_fingerprint.
 * Every function here is pure and per token, so formatting a stream's slices and concatenating
 * them gives exactly the whole response's fields.
 */
import { createHash } from "node:crypto";
import type { SampledToken } from "@loracast/shared/runtime";
import type { TextTokenizer } from "@loracast/shared/tokenizer";
import type { GeneratedToken } from "./choice-text.ts";

/**
 * The lowest logprob reported. JSON has no -Infinity (JSON.stringify writes null), so a token the
 * model rules out reports this value, as vLLM does.
 */
export const MIN_LOGPROB = -9999;

const strict = new TextDecoder("utf-8", { fatal: true });

function clamp(logprob: number): number {
  return Math.max(logprob, MIN_LOGPROB);
}

/** Length of the UTF-8 sequence a lead byte starts, or 0 if it cannot start one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * A token's text as logprobs show it: its bytes as UTF-8, except that bytes which are not a
 * whole character inside this token (one byte of "é" split over two byte tokens) are written as
 * `\xHH` escapes, as OpenAI's logprobs write partial characters (`"\xf0\x9f\x92"`). The escape
 * keeps tokens with different bytes apart, where U+FFFD (vLLM's choice) would make them all one
 * key of `top_logprobs`; the exact bytes are in chat's `bytes`. Special tokens have no bytes: "".
 */
export function tokenText(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const n = sequenceLength(bytes[i] as number);
    if (n > 0 && i + n <= bytes.length) {
      try {
        out += strict.decode(bytes.subarray(i, i + n));
        i += n;
        continue;
      } catch {
        // not a valid character (bad continuation, overlong, surrogate): escape the lead byte
      }
    }
    out += `\\x${(bytes[i] as number).toString(16).padStart(2, "0")}`;
    i++;
  }
  return out;
}

/**
 * Completions `choices[].logprobs` (OpenAI legacy completions, as vLLM fills it):
 * - `tokens[i]`: the token's text ({@link tokenText});
 * - `token_logprobs[i]`: its logprob (log_softmax of the processed logits over the temperature);
 *   null for an echoed prompt's first token, which nothing predicts (OpenAI), whose
 *   `top_logprobs[i]` is null too;
 * - `top_logprobs[i]`: the `logprobs` most likely tokens plus the sampled one when it is not
 *   among them (OpenAI: "up to logprobs+1 elements"), keyed by token text. Two tokens with the
 *   same text (special tokens all show as "") would share a key: the first, more likely, one
 *   keeps it and the other is left out (vLLM's dict would keep the later, less likely, value);
 * - `text_offset[i]`: where the token starts in the choice's text, in code points (see
 *   {@link GeneratedToken.offset}); continuous across a stream's chunks.
 */
export function completionLogprobs(tokens: readonly GeneratedToken[], tok: TextTokenizer) {
  const text = (id: number) => tokenText(tok.tokenBytes(id));
  const out = {
    tokens: [] as string[],
    token_logprobs: [] as (number | null)[],
    top_logprobs: [] as (Record<string, number> | null)[],
    text_offset: [] as number[],
  };
  for (const t of tokens) {
    out.tokens.push(text(t.token));
    out.text_offset.push(t.offset);
    if (t.logprob === null) {
      out.token_logprobs.push(null);
      out.top_logprobs.push(null);
      continue;
    }
    out.token_logprobs.push(clamp(t.logprob));
    const top: Record<string, number> = {};
    const alternatives = [...t.top];
    if (!t.top.some((a) => a.token === t.token)) alternatives.push({ token: t.token, logprob: t.logprob });
    for (const a of alternatives) {
      const key = text(a.token);
      if (!Object.hasOwn(top, key)) top[key] = clamp(a.logprob);
    }
    out.top_logprobs.push(top);
  }
  return out;
}

/**
 * Chat `choices[].logprobs` (OpenAI): per token its `token` text ({@link tokenText}), `logprob`,
 * `bytes` (the token's true UTF-8 bytes, so a lone continuation byte reports that byte and
 * joining `bytes` over a choice gives the UTF-8 of the text) and `top_logprobs` (the requested
 * number of most likely tokens, best first, same fields). `refusal` is null: no refusals here.
 */
export function chatLogprobs(tokens: readonly GeneratedToken[], tok: TextTokenizer) {
  const entry = (id: number, logprob: number | null) => {
    const bytes = tok.tokenBytes(id);
    return { token: tokenText(bytes), logprob: logprob === null ? null : clamp(logprob), bytes: [...bytes] };
  };
  return {
    content: tokens.map((t) => ({
      ...entry(t.token, t.logprob),
      top_logprobs: t.top.map((a) => entry(a.token, a.logprob)),
    })),
    refusal: null,
  };
}

/** OpenAI `usage`: the prompt counted once, completion tokens summed over choices. */
export function usage(promptTokens: number, completionTokens: number) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/**
 * OpenAI `system_fingerprint`: what backend configuration produced the response, so a client can
 * tell that two answers for one seed may differ. Here that is the base model's artifacts (their
 * fingerprint, sha256 over the ONNX graphs and weights) and the adapter version's sha256 (none for
 * the base model): `fp_` and the first 16 hex digits of sha256("<base fingerprint>\n<adapter
 * sha256 or 'base'>").
 */
export function systemFingerprint(baseFingerprint: string, adapterSha256: string | null): string {
  const digest = createHash("sha256")
    .update(`${baseFingerprint}\n${adapterSha256 ?? "base"}`)
    .digest("hex");
  return `fp_${digest.slice(0, 16)}`;
}

/**
 * vLLM's `prompt_logprobs`: one entry per prompt token, null for the first (nothing precedes it),
 * else token id → `{logprob, rank, decoded_token}` for the prompt's token and the top alternatives.
 * `rank` is 1-based among the alternatives, null for a prompt token outside them; `decoded_token`
 * is the token's text as in {@link tokenText}.
 */
export function promptLogprobs(tokens: readonly SampledToken[], tok: TextTokenizer) {
  return tokens.map((t, i) => {
    if (i === 0 || t.logprob === null) return null;
    const entries: Record<string, { logprob: number; rank: number | null; decoded_token: string }> = {};
    entries[String(t.token)] = {
      logprob: clamp(t.logprob),
      rank: (() => {
        const at = t.top.findIndex((a) => a.token === t.token);
        return at < 0 ? null : at + 1;
      })(),
      decoded_token: tokenText(tok.tokenBytes(t.token)),
    };
    t.top.forEach((a, r) => {
      entries[String(a.token)] = {
        logprob: clamp(a.logprob),
        rank: r + 1,
        decoded_token: tokenText(tok.tokenBytes(a.token)),
      };
    });
    return entries;
  });
}
