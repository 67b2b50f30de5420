/**
 * The JSON bodies of /v1/completions and /v1/chat/completions, whole or as stream chunks, in
 * OpenAI's shapes with vLLM's extras. One builder serves one request, so every chunk of a stream
 * shares `id`, `created`, `model` and `system_fingerprint`, and the chunks of a stream, joined,
 * give the fields of the whole response for the same seed (text, logprobs, token ids, finish
 * reasons, usage).
 */
import type { TextTokenizer } from "@loracast/shared/tokenizer";
import { codePoints, type GeneratedToken } from "./choice-text.ts";
import { chatLogprobs, completionLogprobs, usage } from "./format.ts";
import type { ChoiceDelta, ChoiceResult } from "./inference-service.ts";

/** Which endpoint: /v1/completions or /v1/chat/completions. */
export type Kind = "completion" | "chat";

/** What a request's responses say besides its choices, fixed when the request is admitted. */
export interface ResponseContext {
  kind: Kind;
  /** `cmpl-…` or `chatcmpl-…`, shared by every chunk of a stream. */
  id: string;
  /** Unix seconds, from the service's clock. */
  created: number;
  /** The model as responses name it (`<run>@<version>` or the base). */
  model: string;
  /** See `systemFingerprint` in format.ts. */
  systemFingerprint: string;
  promptIds: readonly number[];
  /** Top alternatives per token; null when the request asked for no logprobs. */
  logprobs: number | null;
  /** vLLM `return_token_ids`. */
  returnTokenIds: boolean;
  /** OpenAI `stream_options.include_usage`. */
  includeUsage: boolean;
  n: number;
  tokenizer: TextTokenizer;
  /**
   * Completions `echo`: the prompt (see `promptText` in choice-text.ts) goes before each choice's
   * text and logprobs, and the generated tokens' offsets move past it. Null without echo.
   */
  echo?: { text: string; tokens: readonly GeneratedToken[] } | null;
}

type Json = Record<string, unknown>;

/** The bodies of one request's response: `whole`, or `opening`, a `delta` per step and `closing` for a stream. */
export class ResponseBuilder {
  /** Choices whose `prompt_token_ids` a completions stream has sent (vLLM: first chunk of each). */
  private readonly promptSent = new Set<number>();

  /** Code points of the echoed prompt, which the generated tokens' offsets move past. */
  private readonly shift: number;

  constructor(private readonly c: ResponseContext) {
    this.shift = c.echo ? codePoints(c.echo.text) : 0;
  }

  /** A completion choice's tokens for logprobs: the echoed prompt's first when `withEcho`. */
  private completionTokens(tokens: readonly GeneratedToken[], withEcho: boolean): GeneratedToken[] {
    const moved =
      this.shift === 0 ? [...tokens] : tokens.map((t) => ({ ...t, offset: t.offset + this.shift }));
    return withEcho && this.c.echo ? [...this.c.echo.tokens, ...moved] : moved;
  }

  private head(object: string): Json {
    const { id, created, model, systemFingerprint } = this.c;
    return { id, object, created, model, system_fingerprint: systemFingerprint };
  }

  private logprobs(tokens: readonly GeneratedToken[]) {
    if (this.c.logprobs === null) return null;
    return this.c.kind === "chat"
      ? chatLogprobs(tokens, this.c.tokenizer)
      : completionLogprobs(tokens, this.c.tokenizer);
  }

  private tokenIds(tokens: readonly GeneratedToken[]): Json {
    return this.c.returnTokenIds ? { token_ids: tokens.map((t) => t.token) } : {};
  }

  /** OpenAI counts the prompt once and the completion tokens of every choice. */
  usage(choices: readonly ChoiceResult[]) {
    return usage(
      this.c.promptIds.length,
      choices.reduce((a, ch) => a + ch.tokens.length, 0),
    );
  }

  /** The non-streamed response. */
  whole(choices: readonly ChoiceResult[]): Json {
    const prompt = this.c.returnTokenIds ? { prompt_token_ids: [...this.c.promptIds] } : {};
    if (this.c.kind === "chat") {
      return {
        ...this.head("chat.completion"),
        choices: choices.map((ch) => ({
          index: ch.index,
          message: { role: "assistant", content: ch.text, refusal: null },
          logprobs: this.logprobs(ch.tokens),
          finish_reason: ch.finishReason,
          ...this.tokenIds(ch.tokens),
        })),
        usage: this.usage(choices),
        // vLLM puts chat's prompt ids beside `choices`, and completions' in each choice.
        ...prompt,
      };
    }
    return {
      ...this.head("text_completion"),
      choices: choices.map((ch) => ({
        index: ch.index,
        text: (this.c.echo?.text ?? "") + ch.text,
        logprobs: this.logprobs(this.completionTokens(ch.tokens, true)),
        finish_reason: ch.finishReason,
        ...this.tokenIds(ch.tokens),
        ...prompt,
      })),
      usage: this.usage(choices),
    };
  }

  /** A stream chunk around `choices`; with include_usage every chunk but the last has `usage: null`. */
  private chunk(choices: Json[], extra: Json = {}): Json {
    const object = this.c.kind === "chat" ? "chat.completion.chunk" : "text_completion";
    return {
      ...this.head(object),
      choices,
      ...(this.c.includeUsage ? { usage: null } : {}),
      ...extra,
    };
  }

  /**
   * Chunks before any token: chat's `role` chunk per choice (the first carries vLLM's
   * `prompt_token_ids`); for completions with echo, each choice's echoed prompt.
   */
  opening(): Json[] {
    const echo = this.c.echo;
    if (this.c.kind !== "chat") {
      if (!echo) return [];
      return Array.from({ length: this.c.n }, (_, index) =>
        this.chunk([
          {
            index,
            text: echo.text,
            logprobs: this.logprobs(echo.tokens),
            finish_reason: null,
            ...this.tokenIds([]),
            ...this.promptOnce(index),
          },
        ]),
      );
    }
    return Array.from({ length: this.c.n }, (_, index) =>
      this.chunk(
        [
          {
            index,
            delta: { role: "assistant", content: "", refusal: null },
            logprobs: null,
            finish_reason: null,
            ...this.tokenIds([]),
          },
        ],
        index === 0 && this.c.returnTokenIds ? { prompt_token_ids: [...this.c.promptIds] } : {},
      ),
    );
  }

  /** The chunk for one step of one choice. */
  delta(d: ChoiceDelta): Json {
    if (this.c.kind === "chat") {
      return this.chunk([
        {
          index: d.index,
          delta: { content: d.text },
          logprobs: this.logprobs(d.tokens),
          finish_reason: null,
          ...this.tokenIds(d.tokens),
        },
      ]);
    }
    return this.chunk([
      {
        index: d.index,
        text: d.text,
        logprobs: this.logprobs(this.completionTokens(d.tokens, false)),
        finish_reason: null,
        ...this.tokenIds(d.tokens),
        ...this.promptOnce(d.index),
      },
    ]);
  }

  private promptOnce(index: number): Json {
    if (!this.c.returnTokenIds || this.promptSent.has(index)) return {};
    this.promptSent.add(index);
    return { prompt_token_ids: [...this.c.promptIds] };
  }

  /** Chunks after the last token: each choice's `finish_reason`, then the usage chunk if asked for. */
  closing(choices: readonly ChoiceResult[]): Json[] {
    const out = choices.map((ch) =>
      this.chunk([
        this.c.kind === "chat"
          ? {
              index: ch.index,
              delta: {},
              logprobs: null,
              finish_reason: ch.finishReason,
              ...this.tokenIds([]),
            }
          : {
              index: ch.index,
              text: "",
              logprobs: null,
              finish_reason: ch.finishReason,
              ...this.tokenIds([]),
              ...this.promptOnce(ch.index),
            },
      ]),
    );
    if (this.c.includeUsage) out.push(this.chunk([], { usage: this.usage(choices) }));
    return out;
  }
}
