/**
 * The JSON bodies of /v1/completions and /v1/chat/completions, whole or as stream chunks, in
 * OpenAI's shapes with vLLM's extras. One builder serves one request, so every chunk of a stream
 * shares `id`, `created`, `model` and `system_fingerprint`, and the chunks of a stream, joined,
 * give the fields of the whole response for the same seed (text, logprobs, token ids, finish
 * reasons, usage).
 */
import type { TextTokenizer } from "@loracast/shared/tokenizer";
import { codePoints, type GeneratedToken, promptText } from "./choice-text.ts";
import { chatLogprobs, completionLogprobs, promptLogprobs, usage } from "./format.ts";
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
  /** The request's prompts (completions may batch several; choice `index` is `prompt * n + i`). */
  prompts: readonly { ids: readonly number[]; text: string }[];
  /** Top alternatives per token; null when the request asked for no logprobs. */
  logprobs: number | null;
  /**
   * Completions `echo`: each choice's text starts with its prompt's (a stream opens each choice
   * with it), the generated tokens' offsets move past it, and with logprobs the prompt's tokens
   * (`ChoiceResult.promptTokens`) come first in the logprobs.
   */
  echo: boolean;
  /** vLLM `prompt_logprobs` was asked for. */
  returnPromptLogprobs: boolean;
  /** vLLM `return_token_ids`. */
  returnTokenIds: boolean;
  /** OpenAI `stream_options.include_usage`. */
  includeUsage: boolean;
  /**
   * vLLM `stream_options.continuous_usage_stats` (with include_usage): every chunk of one choice
   * carries that choice's usage so far (its prompt's tokens, its tokens generated up to and with
   * this chunk), as vLLM's; the last chunk still carries the whole request's usage.
   */
  continuousUsage: boolean;
  n: number;
  tokenizer: TextTokenizer;
}

type Json = Record<string, unknown>;

/** The bodies of one request's response: `whole`, or `opening`, a `delta` per step and `closing` for a stream. */
export class ResponseBuilder {
  /** Choices whose `prompt_token_ids` a completions stream has sent (vLLM: first chunk of each). */
  private readonly promptSent = new Set<number>();
  /** Tokens each choice has streamed so far (for continuous usage). */
  private readonly streamed = new Map<number, number>();

  constructor(private readonly c: ResponseContext) {}

  private prompt(choiceIndex: number): { ids: readonly number[]; text: string } | undefined {
    return this.c.prompts[Math.floor(choiceIndex / this.c.n)];
  }

  private promptIds(choiceIndex: number): number[] {
    return [...(this.prompt(choiceIndex)?.ids ?? [])];
  }

  /** What echo puts before a completion choice's text ("" without echo). */
  private echoed(choiceIndex: number): string {
    return this.c.kind === "completion" && this.c.echo ? (this.prompt(choiceIndex)?.text ?? "") : "";
  }

  /** Generated tokens with their offsets moved past the echoed prompt. */
  private afterEcho(choiceIndex: number, tokens: readonly GeneratedToken[]): GeneratedToken[] {
    const shift = codePoints(this.echoed(choiceIndex));
    return shift === 0 ? [...tokens] : tokens.map((t) => ({ ...t, offset: t.offset + shift }));
  }

  /** A completion choice's tokens for logprobs: with echo, the prompt's first (the first without a logprob). */
  private completionTokens(ch: ChoiceResult): GeneratedToken[] {
    const generated = this.afterEcho(ch.index, ch.tokens);
    if (!this.c.echo || ch.promptTokens === null) return generated;
    return [...promptText(this.c.tokenizer, ch.promptTokens).tokens, ...generated];
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

  /** OpenAI counts each prompt once, however many choices continue it, and every choice's tokens. */
  private usage(choices: readonly ChoiceResult[]) {
    return usage(
      this.c.prompts.reduce((a, p) => a + p.ids.length, 0),
      choices.reduce((a, ch) => a + ch.tokens.length, 0),
    );
  }

  private promptLogprobs(ch: ChoiceResult | undefined): Json {
    if (!this.c.returnPromptLogprobs) return {};
    return { prompt_logprobs: promptLogprobs(ch?.promptTokens ?? [], this.c.tokenizer) };
  }

  /** The non-streamed response. */
  whole(choices: readonly ChoiceResult[]): Json {
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
        // vLLM puts chat's prompt ids and prompt logprobs beside `choices` (one prompt for all),
        // and completions' in each choice.
        ...(this.c.returnTokenIds ? { prompt_token_ids: this.promptIds(0) } : {}),
        ...this.promptLogprobs(choices[0]),
      };
    }
    return {
      ...this.head("text_completion"),
      choices: choices.map((ch) => ({
        index: ch.index,
        text: this.echoed(ch.index) + ch.text,
        logprobs: this.logprobs(this.completionTokens(ch)),
        finish_reason: ch.finishReason,
        ...this.tokenIds(ch.tokens),
        ...(this.c.returnTokenIds ? { prompt_token_ids: this.promptIds(ch.index) } : {}),
        ...this.promptLogprobs(ch),
      })),
      usage: this.usage(choices),
    };
  }

  /**
   * A stream chunk around `choices` (of one choice, or none); with include_usage every chunk but
   * the last has `usage: null`, or with continuous usage that choice's usage so far.
   */
  private chunk(choices: Json[], extra: Json = {}): Json {
    const object = this.c.kind === "chat" ? "chat.completion.chunk" : "text_completion";
    const index = choices[0]?.index as number | undefined;
    const running =
      this.c.continuousUsage && index !== undefined
        ? usage(this.prompt(index)?.ids.length ?? 0, this.streamed.get(index) ?? 0)
        : null;
    return {
      ...this.head(object),
      choices,
      ...(this.c.includeUsage ? { usage: running } : {}),
      ...extra,
    };
  }

  /**
   * Chunks before any token: chat's `role` chunk per choice (the first carries vLLM's
   * `prompt_token_ids`); with completions `echo`, each choice's prompt text (echo with logprobs is
   * refused when streaming, as the prompt's logprobs come with the result).
   */
  opening(): Json[] {
    if (this.c.kind !== "chat") {
      if (!this.c.echo) return [];
      return Array.from({ length: this.c.prompts.length * this.c.n }, (_, index) =>
        this.chunk([
          {
            index,
            text: this.echoed(index),
            logprobs: this.logprobs([]),
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
        index === 0 && this.c.returnTokenIds ? { prompt_token_ids: this.promptIds(0) } : {},
      ),
    );
  }

  /** The chunk for one step of one choice. */
  delta(d: ChoiceDelta): Json {
    this.streamed.set(d.index, (this.streamed.get(d.index) ?? 0) + d.tokens.length);
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
        logprobs: this.logprobs(this.afterEcho(d.index, d.tokens)),
        finish_reason: null,
        ...this.tokenIds(d.tokens),
        ...this.promptOnce(d.index),
      },
    ]);
  }

  private promptOnce(index: number): Json {
    if (!this.c.returnTokenIds || this.promptSent.has(index)) return {};
    this.promptSent.add(index);
    return { prompt_token_ids: this.promptIds(index) };
  }

  /**
   * Chunks after the last token: each choice's `finish_reason` (with vLLM's `prompt_logprobs`,
   * known only once the choice is done: per choice for completions, on the first for chat), then
   * the usage chunk if asked for.
   */
  closing(choices: readonly ChoiceResult[]): Json[] {
    for (const ch of choices) this.streamed.set(ch.index, ch.tokens.length);
    const out = choices.map((ch, i) =>
      this.c.kind === "chat"
        ? this.chunk(
            [
              {
                index: ch.index,
                delta: {},
                logprobs: null,
                finish_reason: ch.finishReason,
                ...this.tokenIds([]),
              },
            ],
            i === 0 ? this.promptLogprobs(ch) : {},
          )
        : this.chunk([
            {
              index: ch.index,
              text: "",
              logprobs: null,
              finish_reason: ch.finishReason,
              ...this.tokenIds([]),
              ...this.promptOnce(ch.index),
              ...this.promptLogprobs(ch),
            },
          ]),
    );
    if (this.c.includeUsage) out.push(this.chunk([], { usage: this.usage(choices) }));
    return out;
  }
}
