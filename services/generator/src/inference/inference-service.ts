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
  type SampledToken,
  type SamplingParams,
} from "@loracast/shared/runtime";
import { IncrementalDecoder, type TextTokenizer } from "@loracast/shared/tokenizer";
import type { AliasEntry, AliasRegistry } from "../aliases/index.ts";
import type { ApiError } from "../errors.ts";
import type { AdapterManager, VersionRecord } from "../lifecycle/index.ts";
import { ensureErrorToApi, ensureVersion, parseVersionRef } from "./model-ref.ts";
import type { SamplingFields } from "./openai-schema.ts";
import { StopMatcher } from "./stop-matcher.ts";

/** The adapter a request runs on, pinned until `release()`. */
export interface ResolvedModel {
  /** What responses name: the base name, `<run>@<version>`, or the alias the request named (as vLLM). */
  name: string;
  /** The `load_lora_adapter` name the request used; null when it named the base, a run or a version. */
  alias: string | null;
  /** The run behind the adapter; null for the base and for a local directory. */
  run: string | null;
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

export interface ChoiceDelta {
  index: number;
  text: string;
  tokens: SampledToken[];
}

export interface ChoiceResult {
  index: number;
  text: string;
  tokens: SampledToken[];
  finishReason: Exclude<FinishReason, "abort"> | null;
}

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
}

export class InferenceService {
  constructor(private readonly d: InferenceDeps) {}

  get tokenizer(): TextTokenizer {
    return this.d.tokenizer;
  }

  get contextLength(): number {
    return this.d.session.manifest.maxPositions;
  }

  /**
   * `<base>`, an alias (`load_lora_adapter`'s `lora_name`: the version or directory it serves now;
   * 410 `adapter_revoked` once a rollback revoked that version), `<run>` (its active version; the
   * rollback's target once a rollback revoked that) or `<run>@<version>` (pulled on demand; refused
   * with `adapter_revoked` if a rollback revoked it).
   */
  async resolve(model: string): Promise<Result<ResolvedModel, ApiError>> {
    if (model === this.d.baseName) {
      return ok({
        name: model,
        alias: null,
        run: null,
        version: null,
        sha256: null,
        key: "base",
        feeds: baseFeeds(this.d.session.spec),
        release: () => {},
      });
    }
    const alias = this.d.aliases.get(model);
    if (alias !== undefined) return this.resolveAlias(alias);
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
    return this.pinned(record, model, null, manager.pin(record));
  }

  /**
   * The alias's target as it is at this instant: its version is pinned for the request before any
   * await, so a `load_lora_adapter` that replaces the alias meanwhile cannot release it under us.
   */
  private async resolveAlias(alias: AliasEntry): Promise<Result<ResolvedModel, ApiError>> {
    const t = alias.target;
    if (t.kind === "local") {
      if (t.adapter.feeds === null)
        return err({ code: "model_not_found", message: `${alias.name} is not loaded`, param: "model" });
      return ok({
        name: alias.name,
        alias: alias.name,
        run: null,
        version: null,
        sha256: t.adapter.sha256,
        key: `local:${t.adapter.sha256}`,
        feeds: t.adapter.feeds,
        release: () => {},
      });
    }
    const release = this.d.manager.pin(t.record);
    // Refuses a version that a rollback revoked since the alias was loaded (unless the operator serves them).
    const ensured = await ensureVersion(this.d.manager, t.record, "model");
    if (!ensured.ok) {
      release();
      return ensured;
    }
    return this.pinned(t.record, alias.name, alias.name, release);
  }

  private pinned(
    record: VersionRecord,
    model: string,
    alias: string | null,
    release: () => void,
  ): Result<ResolvedModel, ApiError> {
    const feeds = record.adapter?.feeds;
    if (feeds == null) {
      release();
      return err({ code: "model_not_found", message: `${model} is not loaded`, param: "model" });
    }
    const key = `${record.run}@${record.version}`;
    return ok({
      name: alias ?? key,
      alias,
      run: record.run,
      version: record.version,
      sha256: record.sha256,
      key,
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
    const decoder = new IncrementalDecoder(this.d.tokenizer);
    const matcher = new StopMatcher(plan.stops);
    let text = "";
    let stopped = false;
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
      shouldStop: () => stopped,
      onToken: (t) => {
        if (stopped) return;
        const out = matcher.push(decoder.push(t.token));
        stopped = out.stopped;
        text += out.emit;
        onDelta?.({ index, text: out.emit, tokens: [t] });
      },
    });
    if (!stopped) {
      const tail = matcher.push(decoder.flush()).emit + matcher.flush();
      text += tail;
      if (tail.length > 0) onDelta?.({ index, text: tail, tokens: [] });
    }
    return {
      index,
      text,
      tokens: r.tokens,
      finishReason: r.finishReason === "abort" ? null : r.finishReason,
    };
  }
}
