/**
 * The logits processors of one sequence: what changes a row of logits before the temperature and
 * truncation of `sampleToken`. Applied in vLLM's order (vllm/v1/sample/sampler.py,
 * `Sampler.forward`: the processors that can change the argmax, min_tokens then logit_bias,
 * then `apply_penalties`):
 *
 * 1. min_tokens (vLLM `MinTokensLogitsProcessor`): while fewer than `minTokens` tokens are
 *    generated, every stop token's logit is -inf.
 * 2. logit_bias (OpenAI; vLLM `LogitBiasLogitsProcessor`): `logit[j] += bias[j]`.
 * 3. repetition_penalty (vLLM `apply_penalties`, after CTRL, Keskar et al. 2019,
 *    arXiv:1909.05858): for every token j seen in the prompt or generated so far,
 *    `logit[j] = logit[j] > 0 ? logit[j] / p : logit[j] * p`.
 * 4. frequency_penalty and presence_penalty (OpenAI's "frequency and presence penalties",
 *    platform.openai.com/docs/api-reference/parameter-details, and vLLM `apply_penalties`, which
 *    cites it):
 *    `logit[j] -= c[j] * frequency + (c[j] > 0 ? 1 : 0) * presence`, where c[j] counts the
 *    generated tokens equal to j (the prompt does not count).
 *
 * The counts are kept incrementally (`record`), so a step costs O(distinct tokens seen) on top of
 * one copy of the row, never a rescan of the sequence. A sequence without processors gets none
 * (`createLogitsProcessors` returns null), so its row is never copied.
 */
import type { SamplingParams } from "./sampling.ts";

/** What a sequence ends on, for min_tokens. */
export interface StopConditions {
  /** vLLM min_tokens: stop tokens are masked while fewer tokens than this are generated. */
  minTokens: number;
  /** The tokens that end the sequence (EOS and the request's stop token ids). */
  stopTokens: ReadonlySet<number>;
}

/** Per-sequence processors and the token counts they need; see the module comment. */
export class LogitsProcessors {
  /** Generated token → how many times it was generated (frequency and presence penalties). */
  private readonly counts = new Map<number, number>();
  /** Tokens of the prompt and the output so far (repetition penalty); null when it is 1. */
  private readonly seen: Set<number> | null;
  private generated = 0;

  private constructor(
    private readonly params: SamplingParams,
    private readonly stop: StopConditions,
    prompt: readonly number[],
  ) {
    this.seen = (params.repetitionPenalty ?? 1) === 1 ? null : new Set(prompt);
  }

  /** Processors for one sequence; null when none would change a logit, so the row stays as is. */
  static create(
    params: SamplingParams,
    prompt: readonly number[],
    stop: StopConditions,
  ): LogitsProcessors | null {
    const active =
      stop.minTokens > 0 ||
      (params.logitBias?.size ?? 0) > 0 ||
      (params.repetitionPenalty ?? 1) !== 1 ||
      (params.frequencyPenalty ?? 0) !== 0 ||
      (params.presencePenalty ?? 0) !== 0;
    return active ? new LogitsProcessors(params, stop, prompt) : null;
  }

  /**
   * The row for the next token with every processor applied: a processed copy, or `row` itself
   * when no processor acts at this step (min_tokens alone, once reached). `row` is not modified.
   */
  apply(row: Float32Array): Float32Array {
    const masking = this.generated < this.stop.minTokens;
    const { logitBias, repetitionPenalty = 1, frequencyPenalty = 0, presencePenalty = 0 } = this.params;
    const penalising = this.seen !== null || frequencyPenalty !== 0 || presencePenalty !== 0;
    if (!masking && (logitBias?.size ?? 0) === 0 && !penalising) return row;
    const out = row.slice();
    if (masking) for (const t of this.stop.stopTokens) if (t < out.length) out[t] = Number.NEGATIVE_INFINITY;
    if (logitBias !== undefined) for (const [t, bias] of logitBias) out[t] = (out[t] ?? 0) + bias;
    if (this.seen !== null) {
      for (const t of this.seen) {
        const v = out[t] ?? 0;
        out[t] = v > 0 ? v / repetitionPenalty : v * repetitionPenalty;
      }
    }
    if (frequencyPenalty !== 0 || presencePenalty !== 0) {
      for (const [t, c] of this.counts) out[t] = (out[t] ?? 0) - (c * frequencyPenalty + presencePenalty);
    }
    return out;
  }

  /** Counts the token just generated. */
  record(token: number): void {
    this.generated++;
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    this.seen?.add(token);
  }
}

/**
 * Why `params` and `minTokens` cannot run on a vocabulary of `vocab` tokens, naming the field, or
 * null when they can. The API checks its own ranges first; this guards the engine's invariants
 * (an id outside the vocabulary would write past the row; a repetition penalty ≤ 0 would flip or
 * zero the logits).
 */
export function invalidProcessorParams(
  params: SamplingParams,
  minTokens: number,
  vocab: number,
): string | null {
  for (const [t, bias] of params.logitBias ?? []) {
    if (!Number.isInteger(t) || t < 0 || t >= vocab)
      return `logitBias: token id ${t} is outside the vocabulary (0..${vocab - 1})`;
    if (!Number.isFinite(bias)) return `logitBias: the bias of token ${t} is not a finite number`;
  }
  const { repetitionPenalty = 1, frequencyPenalty = 0, presencePenalty = 0 } = params;
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0))
    return `repetitionPenalty must be a finite number > 0, got ${repetitionPenalty}`;
  if (!Number.isFinite(frequencyPenalty)) return `frequencyPenalty must be finite, got ${frequencyPenalty}`;
  if (!Number.isFinite(presencePenalty)) return `presencePenalty must be finite, got ${presencePenalty}`;
  if (!(Number.isInteger(minTokens) && minTokens >= 0))
    return `minTokens must be an integer ≥ 0, got ${minTokens}`;
  return null;
}
