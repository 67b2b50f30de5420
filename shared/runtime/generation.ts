/** What one sequence asks of the engine and what it gets back. */
import type { Rng } from "../random/index.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import type { SampledToken, SamplingParams } from "./sampling.ts";

/** One sequence for `Engine.generate`: a prompt, its adapter, and how to sample and stop. */
export interface GenerationRequest {
  /** Prompt token ids; must not be empty. */
  prompt: readonly number[];
  /** The adapter version pinned at admission. Requests with the same key share batches. */
  adapter: { key: string; feeds: LoraFeeds };
  /** Temperature, truncation and logits processors; `generate` rejects with a RangeError naming a bad field. */
  sampling: SamplingParams;
  /** Most tokens to generate; it ends the sequence with reason "length" even before `minTokens`. */
  maxTokens: number;
  /** Tokens that end the sequence with reason "stop" (EOS and the request's stop token ids). */
  stopTokens: ReadonlySet<number>;
  /**
   * vLLM min_tokens (default 0): while fewer tokens are generated, the stop tokens' logits are
   * -inf, and neither a stop token nor `shouldStop` ends the sequence until more than this many
   * tokens exist (vLLM checks stop strings only then too), so at least `minTokens` tokens precede
   * whatever stops it. `maxTokens` still wins.
   */
  minTokens?: number;
  /**
   * Checked after each token, once `onToken` has seen it; true ends the sequence with reason
   * "stop", once more than `minTokens` tokens exist. The caller keeps whatever state it needs
   * (stop strings track the decoded text); with `minTokens`, it should not match stop strings in
   * the first `minTokens` tokens, whose text the sequence keeps.
   */
  shouldStop?: () => boolean;
  /** Top alternatives to return with each token; null asks for no logprobs at all. */
  logprobs: number | null;
  /**
   * vLLM prompt_logprobs (OpenAI echo with logprobs): the top alternatives to return at each
   * prompt position in `GenerationResult.promptTokens`; 0 returns only each prompt token's own
   * logprob; null or absent computes nothing. Costs the logits of every prompt position in the
   * prefill, which only the requests that ask for it pay (they are prefilled apart).
   */
  promptLogprobs?: number | null;
  /** The sequence's own random stream: a seed replays the same tokens. */
  rng: Rng;
  /** Aborting ends the sequence with reason "abort" at the next step. */
  signal?: AbortSignal;
  /** Called with each generated token as soon as it is sampled. */
  onToken?: (t: SampledToken) => void;
}

/** Why a sequence ended: a stop token or `shouldStop`, `maxTokens`, or its signal. */
export type FinishReason = "stop" | "length" | "abort";

/** What `Engine.generate` resolves to. */
export interface GenerationResult {
  /** The generated tokens, the stop token included when one ended the sequence. */
  tokens: SampledToken[];
  finishReason: FinishReason;
  /**
   * One entry per prompt token when `promptLogprobs` was asked (absent otherwise, and for a
   * request aborted before its prefill): the token, log p(token | the tokens before it) from the
   * raw model logits (log_softmax without processors or temperature, as vLLM's prompt_logprobs),
   * and the `promptLogprobs` best alternatives. The first token has no prefix: logprob null, top [].
   */
  promptTokens?: SampledToken[];
}

/**
 * A step's logits for a sequence were NaN or infinite: the adapter's factors are finite but its
 * effect overflows float32 (say `lora_alpha: 1e20`). Sampling from such a row would answer empty
 * text with null logprobs as if nothing were wrong, so the sequence fails instead. `adapter` is the
 * request's adapter key (`run@version`, or `base`).
 */
export class NonFiniteLogitsError extends Error {
  override readonly name = "NonFiniteLogitsError";
  constructor(
    readonly adapter: string,
    /** Index of the token whose logits were non-finite, among the generated or the prompt tokens. */
    readonly step: number,
    /** Whether the step was a generated token or a prompt token scored for `promptLogprobs`. */
    readonly where: "generated" | "prompt" = "generated",
  ) {
    super(
      `adapter ${adapter} produced non-finite logits at ${where} token ${step}: its LoRA effect overflows float32 (check lora_alpha / alpha_pattern and the factor magnitudes)`,
    );
  }
}
