/**
 * From an OpenAI request to engine work: which adapter the `model` names (pinned for the request's
 * whole life, by `ModelResolver`), the prompt's token budget, and one engine sequence per choice with text, stop
 * strings and logprobs assembled as the tokens arrive.
 */
import type { Logger } from "@loracast/shared/platform";
import { createRng, deriveSeed, type Rng } from "@loracast/shared/random";
import { err, ok, type Result } from "@loracast/shared/result";
import {
  baseFeeds,
  type DecoderSession,
  type Engine,
  type FinishReason,
  type SampledToken,
  type SamplingParams,
} from "@loracast/shared/runtime";
import type { TextTokenizer } from "@loracast/shared/tokenizer";
import type { AliasRegistry } from "../aliases/index.ts";
import type { ApiError } from "../errors.ts";
import type { AdapterManager } from "../lifecycle/index.ts";
import { ChoiceText, type GeneratedToken } from "./choice-text.ts";
import { ModelResolver, type ResolvedModel } from "./model-resolver.ts";
import type { SamplingFields } from "./params/index.ts";

/** One prompt of a request, as the engine sees it. */
export interface PromptPlan {
  ids: number[];
  /** The prompt's text (the string sent, or the ids decoded): what `echo` prepends. */
  text: string;
  /** Most tokens generated per choice: `max_tokens`, or the rest of the context. */
  maxTokens: number;
}

/**
 * A request turned into engine work by `plan()`: its prompts, sampling and stopping, and what the
 * response must carry (logprobs, prompt logprobs, echo). Fields follow OpenAI's and vLLM's names.
 */
export interface Plan {
  /** One or more prompts (completions batches them); choice `index` is `prompt * n + i`. */
  prompts: PromptPlan[];
  sampling: SamplingParams;
  /** vLLM min_tokens: stop tokens and stop strings cannot end a choice before this many tokens. */
  minTokens: number;
  stopTokens: ReadonlySet<number>;
  stops: readonly string[];
  /** Choices returned per prompt. */
  n: number;
  /** Candidates generated per prompt (at least `n`); the `n` with the highest cumulative logprob are returned. */
  bestOf: number;
  seed: number;
  /** Top alternatives per token; null when the request asked for no logprobs. */
  logprobs: number | null;
  /** Top alternatives per prompt position for the engine (prompt_logprobs, or echo with logprobs); null: none. */
  promptLogprobs: number | null;
  /** vLLM prompt_logprobs was asked: responses carry a `prompt_logprobs` field. */
  returnPromptLogprobs: boolean;
  /** OpenAI echo: responses put each choice's prompt text (and, with logprobs, its prompt tokens) first. */
  echo: boolean;
}

/** What one step of a choice adds; a stream's deltas concatenate to the choice's result. */
export interface ChoiceDelta {
  index: number;
  /** Text that became final (may be empty while a partial character or stop prefix is held back). */
  text: string;
  /** The tokens sampled in this step, each exactly once (none in the closing delta). */
  tokens: GeneratedToken[];
}

/** One finished choice, before it is formatted as an OpenAI completion or chat choice. */
export interface ChoiceResult {
  index: number;
  /** The prompt this choice continues (its index in `Plan.prompts`). */
  promptIndex: number;
  /** The generated text (without the prompt's, which the response puts first when `echo` is set). */
  text: string;
  /** Every sampled token, stop strings' and EOS included (as vLLM's `token_ids`). */
  tokens: GeneratedToken[];
  /** The prompt's tokens with their logprobs, when `Plan.promptLogprobs` asked for them; else null. */
  promptTokens: SampledToken[] | null;
  finishReason: Exclude<FinishReason, "abort"> | null;
}

/** What the inference service runs on: the one ORT session and its engine, the tokenizer, the adapters. */
export interface InferenceDeps {
  session: DecoderSession;
  engine: Engine;
  tokenizer: TextTokenizer;
  manager: AdapterManager;
  /** Names loaded through `load_lora_adapter`; looked up before runs. */
  aliases: AliasRegistry;
  baseName: string;
  /** Seeds requests that bring no `seed`, so a server run replays. */
  rng: Rng;
  log: Logger;
  /**
   * Most bytes of float32 logits one request's prompt scoring may hold: the engine prefills every
   * sequence that asks for prompt logprobs with logits at every position, `[sequences, longest
   * prompt, vocab]` at once (a 1k-token prompt over a 152k vocabulary is ~600 MB per sequence).
   */
  promptLogprobsMaxBytes: number;
  /** Told each request's time to first token and decode rate (the service's Prometheus metrics). */
  observe?: InferenceObserver;
  /** Milliseconds for those timings. @default performance.now */
  now?: () => number;
}

/** What the inference service reports about each request that generated at least one token. */
export interface InferenceObserver {
  /** Seconds from the request's choices being queued to the engine to its first generated token. */
  firstToken(seconds: number): void;
  /**
   * The request finished: `tokens` generated over all its choices, `decodeSeconds` from its first
   * token to its last.
   */
  finished(tokens: number, decodeSeconds: number): void;
}

/**
 * Serves `/v1/completions` and `/v1/chat/completions` below HTTP: `resolve` a `model` to the base,
 * an alias or a `<run>@<version>` (pinned for the request), `plan` the request, `run` its choices on
 * the engine. Expected failures are `ApiError` results; the routes turn them into responses.
 */
export class InferenceService {
  private readonly resolver: ModelResolver;

  constructor(private readonly d: InferenceDeps) {
    this.resolver = new ModelResolver({
      manager: d.manager,
      aliases: d.aliases,
      baseName: d.baseName,
      baseFeeds: baseFeeds(d.session.spec),
    });
  }

  get tokenizer(): TextTokenizer {
    return this.d.tokenizer;
  }

  /** The base artifacts' fingerprint (`sha256:…` over graphs and weights), for `system_fingerprint`. */
  get baseFingerprint(): string {
    return this.d.session.manifest.fingerprint;
  }

  get contextLength(): number {
    return this.d.session.manifest.maxPositions;
  }

  /** What `model` names, pinned for the request (see `ModelResolver.resolve`). */
  resolve(model: string): Promise<Result<ResolvedModel, ApiError>> {
    return this.resolver.resolve(model);
  }

  /**
   * Checks the request against the vocabulary and the context (each prompt on its own) and turns
   * its fields into engine parameters. `logprobs` is the top alternatives per token (null: none);
   * `echo` is OpenAI's completions echo.
   */
  plan(
    prompts: readonly { ids: number[]; text: string }[],
    f: SamplingFields,
    logprobs: number | null,
    echo: boolean,
  ): Result<Plan, ApiError> {
    const ctx = this.contextLength;
    const vocab = this.d.session.manifest.dims.vocabSize;
    const planned: PromptPlan[] = [];
    for (const [i, prompt] of prompts.entries()) {
      const which = prompts.length > 1 ? `prompt ${i}` : "the prompt";
      if (prompt.ids.length === 0)
        return err({ code: "bad_request", message: `${which} is empty`, param: "prompt" });
      const outOfVocab = prompt.ids.find((id) => id >= vocab);
      if (outOfVocab !== undefined)
        return err({
          code: "bad_request",
          message: `token id ${outOfVocab} in ${which} is outside the vocabulary of ${vocab}`,
          param: "prompt",
        });
      if (prompt.ids.length >= ctx) {
        return err({
          code: "context_length_exceeded",
          message: `${which} has ${prompt.ids.length} tokens; this model's context is ${ctx}`,
          param: "prompt",
        });
      }
      const maxTokens = f.max_tokens ?? ctx - prompt.ids.length;
      if (prompt.ids.length + maxTokens > ctx) {
        return err({
          code: "context_length_exceeded",
          message: `${which} (${prompt.ids.length} tokens) plus max_tokens (${maxTokens}) exceeds this model's context of ${ctx}`,
          param: "max_tokens",
        });
      }
      if (f.min_tokens > maxTokens)
        return err({
          code: "bad_request",
          message: `min_tokens (${f.min_tokens}) exceeds the ${maxTokens} tokens ${which} leaves in the context`,
          param: "min_tokens",
        });
      planned.push({ ids: prompt.ids, text: prompt.text, maxTokens });
    }
    const stops = f.stop === undefined ? [] : typeof f.stop === "string" ? [f.stop] : f.stop;
    if (stops.some((s) => s.length === 0))
      return err({ code: "bad_request", message: "stop strings must not be empty", param: "stop" });
    const badStopToken = f.stop_token_ids?.find((id) => id >= vocab);
    if (badStopToken !== undefined)
      return err({
        code: "bad_request",
        message: `token id ${badStopToken} is outside the vocabulary of ${vocab}`,
        param: "stop_token_ids",
      });
    const logitBias = new Map<number, number>();
    for (const [key, value] of Object.entries(f.logit_bias ?? {})) {
      const id = Number(key);
      if (id >= vocab)
        return err({
          code: "bad_request",
          message: `token id ${key} is outside the vocabulary of ${vocab}`,
          param: `logit_bias.${key}`,
        });
      logitBias.set(id, value);
    }
    const echoLogprobs = echo ? logprobs : null;
    const promptLogprobs =
      f.prompt_logprobs === undefined && echoLogprobs === null
        ? null
        : Math.max(f.prompt_logprobs ?? 0, echoLogprobs ?? 0);
    if (promptLogprobs !== null) {
      const sequences = planned.length * (f.best_of ?? f.n);
      const longest = Math.max(...planned.map((p) => p.ids.length));
      const bytes = sequences * longest * vocab * 4;
      if (bytes > this.d.promptLogprobsMaxBytes)
        return err({
          code: "bad_request",
          message: `scoring the prompt${planned.length > 1 ? "s" : ""} (${sequences} sequences × ${longest} tokens × ${vocab} vocabulary) needs ${Math.ceil(bytes / 2 ** 20)} MiB of logits; this generator allows ${Math.floor(this.d.promptLogprobsMaxBytes / 2 ** 20)} MiB (GENERATOR_PROMPT_LOGPROBS_MAX_MB): send fewer or shorter prompts, or a smaller n`,
          param: f.prompt_logprobs !== undefined ? "prompt_logprobs" : "echo",
        });
    }
    return ok({
      prompts: planned,
      sampling: {
        temperature: f.temperature,
        topK: Math.max(0, f.top_k),
        topP: f.top_p,
        minP: f.min_p,
        ...(logitBias.size > 0 ? { logitBias } : {}),
        presencePenalty: f.presence_penalty,
        frequencyPenalty: f.frequency_penalty,
        repetitionPenalty: f.repetition_penalty,
      },
      minTokens: f.min_tokens,
      stopTokens: new Set([
        ...(f.ignore_eos ? [] : this.d.tokenizer.stopTokenIds),
        ...(f.stop_token_ids ?? []),
      ]),
      stops,
      n: f.n,
      bestOf: f.best_of ?? f.n,
      seed: f.seed ?? this.d.rng.int(2 ** 31),
      logprobs,
      promptLogprobs,
      returnPromptLogprobs: f.prompt_logprobs !== undefined,
      echo,
    });
  }

  /**
   * Runs every choice of a request; `onDelta` sees text as it becomes final. With `bestOf > n`
   * (never streamed), each prompt's candidates are ranked by cumulative logprob, as vLLM and
   * OpenAI do, and the best `n` are returned, indexed `prompt * n + rank`.
   */
  async run(
    model: ResolvedModel,
    plan: Plan,
    signal: AbortSignal,
    onDelta?: (d: ChoiceDelta) => void,
  ): Promise<ChoiceResult[]> {
    const k = plan.bestOf;
    const now = this.d.now ?? (() => performance.now());
    const queued = now();
    let first: number | null = null;
    let generated = 0;
    const counted = (d: ChoiceDelta): void => {
      generated += d.tokens.length;
      if (first === null && d.tokens.length > 0) {
        first = now();
        this.d.observe?.firstToken((first - queued) / 1000);
      }
      onDelta?.(d);
    };
    const candidates = await Promise.all(
      plan.prompts.flatMap((_, p) =>
        Array.from({ length: k }, (_, j) => this.choice(model, plan, p, p * k + j, signal, counted)),
      ),
    );
    if (first !== null) this.d.observe?.finished(generated, (now() - first) / 1000);
    if (k === plan.n) return candidates.map((c) => c.result);
    return plan.prompts.flatMap((_, p) =>
      candidates
        .slice(p * k, (p + 1) * k)
        .sort((a, b) => b.cumulativeLogprob - a.cumulativeLogprob)
        .slice(0, plan.n)
        .map((c, rank) => ({ ...c.result, index: p * plan.n + rank })),
    );
  }

  private async choice(
    model: ResolvedModel,
    plan: Plan,
    promptIndex: number,
    index: number,
    signal: AbortSignal,
    onDelta?: (d: ChoiceDelta) => void,
  ): Promise<{ result: ChoiceResult; cumulativeLogprob: number }> {
    const prompt = plan.prompts[promptIndex] as PromptPlan;
    const text = new ChoiceText(this.d.tokenizer, plan.stops);
    const tokens: GeneratedToken[] = [];
    const r = await this.d.engine.generate({
      prompt: prompt.ids,
      adapter: { key: model.key, feeds: model.feeds },
      sampling: plan.sampling,
      maxTokens: prompt.maxTokens,
      minTokens: plan.minTokens,
      stopTokens: plan.stopTokens,
      // Ranking best_of candidates needs each token's logprob, asked for or not.
      logprobs: plan.logprobs ?? (plan.bestOf > plan.n ? 0 : null),
      promptLogprobs: plan.promptLogprobs,
      // Choices of one request must differ, and a seed must replay them all.
      rng: createRng(deriveSeed(plan.seed, index)),
      signal,
      shouldStop: () => text.isStopped,
      onToken: (t) => {
        // vLLM looks for stop strings only once min_tokens are generated.
        const step = text.push(t, tokens.length + 1 >= plan.minTokens);
        tokens.push(step.token);
        onDelta?.({ index, text: step.emit, tokens: [step.token] });
      },
    });
    const tail = text.finish();
    if (tail.length > 0) onDelta?.({ index, text: tail, tokens: [] });
    return {
      result: {
        index,
        promptIndex,
        text: text.text,
        tokens,
        promptTokens: plan.promptLogprobs === null ? null : (r.promptTokens ?? []),
        finishReason: r.finishReason === "abort" ? null : r.finishReason,
      },
      cumulativeLogprob: r.tokens.reduce((sum, t) => sum + (t.logprob ?? 0), 0),
    };
  }
}
