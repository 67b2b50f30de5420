/**
 * From an OpenAI request to engine work: which adapter the `model` names (pinned for the request's
 * whole life), the prompt's token budget, and one engine sequence per choice with text, stop
 * strings and logprobs assembled as the tokens arrive.
 */
import type { Logger } from "@loracast/shared/platform";
import { createRng, type Rng } from "@loracast/shared/random";
import { err, ok, type Result } from "@loracast/shared/result";
import {
  baseFeeds,
  type DecoderSession,
  type Engine,
  type FinishReason,
  type LoraFeeds,
  type SamplingParams,
} from "@loracast/shared/runtime";
import type { TextTokenizer } from "@loracast/shared/tokenizer";
import type { ApiError } from "../errors.ts";
import type { AdapterManager, VersionRecord } from "../lifecycle/index.ts";
import { ChoiceText, type GeneratedToken } from "./choice-text.ts";
import { ensureErrorToApi, ensureVersion, parseVersionRef } from "./model-ref.ts";
import type { SamplingFields } from "./openai-schema.ts";

/** The adapter a request runs on, pinned until `release()`. */
export interface ResolvedModel {
  /** What responses name: the base name or `<run>@<version>`. */
  name: string;
  version: number | null;
  sha256: string | null;
  key: string;
  feeds: LoraFeeds;
  release(): void;
}

export interface Plan {
  promptIds: number[];
  sampling: SamplingParams;
  maxTokens: number;
  stopTokens: ReadonlySet<number>;
  stops: readonly string[];
  n: number;
  seed: number;
  /** Top alternatives per token; null when the request asked for no logprobs. */
  logprobs: number | null;
}

/** What one step of a choice adds; a stream's deltas concatenate to the choice's result. */
export interface ChoiceDelta {
  index: number;
  /** Text that became final (may be empty while a partial character or stop prefix is held back). */
  text: string;
  /** The tokens sampled in this step, each exactly once (none in the closing delta). */
  tokens: GeneratedToken[];
}

export interface ChoiceResult {
  index: number;
  text: string;
  /** Every sampled token, stop strings' and EOS included (as vLLM's `token_ids`). */
  tokens: GeneratedToken[];
  finishReason: Exclude<FinishReason, "abort"> | null;
}

export interface InferenceDeps {
  session: DecoderSession;
  engine: Engine;
  tokenizer: TextTokenizer;
  manager: AdapterManager;
  baseName: string;
  /** Seeds requests that bring no `seed`, so a server run replays. */
  rng: Rng;
  log: Logger;
}

export class InferenceService {
  constructor(private readonly d: InferenceDeps) {}

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

  /**
   * `<base>`, `<run>` (its active version; the rollback's target once a rollback revoked that) or
   * `<run>@<version>` (pulled on demand; refused with `adapter_revoked` if a rollback revoked it).
   */
  async resolve(model: string): Promise<Result<ResolvedModel, ApiError>> {
    if (model === this.d.baseName) {
      return ok({
        name: model,
        version: null,
        sha256: null,
        key: "base",
        feeds: baseFeeds(this.d.session.spec),
        release: () => {},
      });
    }
    const ref = parseVersionRef(model);
    const manager = this.d.manager;
    let record: VersionRecord;
    if (ref === null) {
      const current = await manager.current(model);
      if (current === null) {
        return err({
          code: "model_not_found",
          message: `no active adapter version for run ${model}`,
          param: "model",
        });
      }
      if (!current.ok) return err(ensureErrorToApi(current.error, model, "model"));
      record = current.value;
    } else {
      const ensured = await ensureVersion(manager, ref, "model");
      if (!ensured.ok) return ensured;
      record = ensured.value;
    }
    const feeds = record.adapter?.feeds;
    if (feeds == null) {
      return err({ code: "model_not_found", message: `${model} is not loaded`, param: "model" });
    }
    const release = manager.pin(record);
    return ok({
      name: `${record.run}@${record.version}`,
      version: record.version,
      sha256: record.sha256,
      key: `${record.run}@${record.version}`,
      feeds,
      release,
    });
  }

  /** Checks the request against the context and turns its fields into engine parameters. */
  plan(promptIds: number[], f: SamplingFields, logprobs: number | null): Result<Plan, ApiError> {
    const ctx = this.contextLength;
    const vocab = this.d.session.manifest.dims.vocabSize;
    if (promptIds.length === 0)
      return err({ code: "bad_request", message: "the prompt is empty", param: "prompt" });
    const outOfVocab = promptIds.find((id) => id >= vocab);
    if (outOfVocab !== undefined)
      return err({
        code: "bad_request",
        message: `token id ${outOfVocab} is outside the vocabulary of ${vocab}`,
        param: "prompt",
      });
    if (promptIds.length >= ctx) {
      return err({
        code: "context_length_exceeded",
        message: `the prompt has ${promptIds.length} tokens; this model's context is ${ctx}`,
        param: "prompt",
      });
    }
    const maxTokens = f.max_tokens ?? ctx - promptIds.length;
    if (promptIds.length + maxTokens > ctx) {
      return err({
        code: "context_length_exceeded",
        message: `prompt (${promptIds.length} tokens) plus max_tokens (${maxTokens}) exceeds this model's context of ${ctx}`,
        param: "max_tokens",
      });
    }
    const stops = f.stop === undefined ? [] : typeof f.stop === "string" ? [f.stop] : f.stop;
    if (stops.some((s) => s.length === 0))
      return err({ code: "bad_request", message: "stop strings must not be empty", param: "stop" });
    return ok({
      promptIds,
      sampling: { temperature: f.temperature, topK: Math.max(0, f.top_k), topP: f.top_p, minP: f.min_p },
      maxTokens,
      stopTokens: new Set([
        ...(f.ignore_eos ? [] : this.d.tokenizer.stopTokenIds),
        ...(f.stop_token_ids ?? []),
      ]),
      stops,
      n: f.n,
      seed: f.seed ?? this.d.rng.int(2 ** 31),
      logprobs,
    });
  }

  /** Runs every choice of a request; `onDelta` sees text as it becomes final. */
  async run(
    model: ResolvedModel,
    plan: Plan,
    signal: AbortSignal,
    onDelta?: (d: ChoiceDelta) => void,
  ): Promise<ChoiceResult[]> {
    return Promise.all(
      Array.from({ length: plan.n }, (_, index) => this.choice(model, plan, index, signal, onDelta)),
    );
  }

  private async choice(
    model: ResolvedModel,
    plan: Plan,
    index: number,
    signal: AbortSignal,
    onDelta?: (d: ChoiceDelta) => void,
  ): Promise<ChoiceResult> {
    const text = new ChoiceText(this.d.tokenizer, plan.stops);
    const tokens: GeneratedToken[] = [];
    const r = await this.d.engine.generate({
      prompt: plan.promptIds,
      adapter: { key: model.key, feeds: model.feeds },
      sampling: plan.sampling,
      maxTokens: plan.maxTokens,
      stopTokens: plan.stopTokens,
      logprobs: plan.logprobs,
      // Choices of one request must differ, and a seed must replay them all.
      rng: createRng((plan.seed * 1_000_003 + index) >>> 0),
      signal,
      shouldStop: () => text.isStopped,
      onToken: (t) => {
        const step = text.push(t);
        tokens.push(step.token);
        onDelta?.({ index, text: step.emit, tokens: [step.token] });
      },
    });
    const tail = text.finish();
    if (tail.length > 0) onDelta?.({ index, text: tail, tokens: [] });
    return {
      index,
      text: text.text,
      tokens,
      finishReason: r.finishReason === "abort" ? null : r.finishReason,
    };
  }
}
