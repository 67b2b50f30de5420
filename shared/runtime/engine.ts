/**
 * Continuous batching over one decoder session. Sequences that pin the same adapter version share
 * a batch: the graph takes one set of LoRA factors per run, so each adapter group costs one session
 * run per decode step (docs/architecture.md weighs this against per-row LoRA). New requests are
 * prefilled together, then merged into their group's running batch between decode steps, so a
 * long generation never blocks a new one for more than a step.
 */
import type { DecoderSession } from "./decoder-session.ts";
import {
  type FinishReason,
  type GenerationRequest,
  type GenerationResult,
  NonFiniteLogitsError,
} from "./generation.ts";
import type { KvCache } from "./kv-cache.ts";
import { allFinite } from "./logits.ts";
import { invalidProcessorParams, LogitsProcessors } from "./logits-processors.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import { type SampledToken, sampleToken, scoreToken } from "./sampling.ts";

interface Sequence {
  req: GenerationRequest;
  /** Set when a step's logits were non-finite; the sequence is rejected with it at the next check. */
  failure?: NonFiniteLogitsError;
  tokens: SampledToken[];
  /** The request's logits processors; null when it has none, and its rows are sampled as they come. */
  processors: LogitsProcessors | null;
  /** Set by the prefill when the request asked for prompt logprobs. */
  promptTokens?: SampledToken[];
  ids: number[];
  /** Tokens in the cache for this row (prompt + generated so far, minus the pending last one). */
  valid: number;
  resolve(r: GenerationResult): void;
  reject(e: unknown): void;
}

interface Group {
  key: string;
  feeds: LoraFeeds;
  rows: Sequence[];
  cache: KvCache | null;
  pads: number[];
}

/** Options of an `Engine`. */
export interface EngineOptions {
  /** Most sequences decoded together in one adapter group. @default 16 */
  maxBatch?: number;
}

/**
 * Continuous batching over one `DecoderSession`: `generate` queues a request and resolves when it
 * finishes (stop token, length, stop callback or abort), with its tokens and their logprobs. Invalid
 * sampling parameters reject; non-finite logits reject that request alone with `NonFiniteLogitsError`.
 */
export class Engine {
  private readonly waiting: Sequence[] = [];
  private readonly groups = new Map<string, Group>();
  private running = false;
  private readonly maxBatch: number;
  readonly stats = { prefills: 0, decodeSteps: 0, tokens: 0, maxBatchSeen: 0 };

  constructor(
    private readonly session: DecoderSession,
    options: EngineOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 16;
  }

  /**
   * Sequences queued for a prefill: new ones, and those a full adapter group (`maxBatch`) holds back.
   * The ones being prefilled or decoded are not counted (see `load`).
   */
  get queued(): number {
    return this.waiting.length;
  }

  /** Sequences waiting for a prefill or being decoded. */
  get load(): number {
    let n = this.waiting.length;
    for (const g of this.groups.values()) n += g.rows.length;
    return n;
  }

  /**
   * Queues one sequence (one choice) for generation; starts the loop on the next event-loop turn when
   * it is idle. Rejects at once when the prompt is empty, or with a `RangeError` when a parameter is
   * out of range for this vocabulary.
   */
  generate(req: GenerationRequest): Promise<GenerationResult> {
    if (req.prompt.length === 0) return Promise.reject(new Error("prompt is empty"));
    const invalid = invalidProcessorParams(
      req.sampling,
      req.minTokens ?? 0,
      this.session.manifest.dims.vocabSize,
    );
    if (invalid !== null) return Promise.reject(new RangeError(invalid));
    const k = req.promptLogprobs;
    if (k != null && !(Number.isInteger(k) && k >= 0))
      return Promise.reject(new RangeError(`promptLogprobs must be an integer ≥ 0 or null, got ${k}`));
    const processors = LogitsProcessors.create(req.sampling, req.prompt, {
      minTokens: req.minTokens ?? 0,
      stopTokens: req.stopTokens,
    });
    return new Promise((resolve, reject) => {
      this.waiting.push({ req, tokens: [], processors, ids: [...req.prompt], valid: 0, resolve, reject });
      if (this.running) return;
      this.running = true;
      // Start on the next turn of the event loop, so that requests submitted together (the n
      // choices of one request, a client's burst) share the first prefill instead of the first
      // one running alone.
      setImmediate(() => void this.loop());
    });
  }

  private async loop(): Promise<void> {
    try {
      while (this.waiting.length > 0 || this.groups.size > 0) {
        await this.admit();
        for (const group of [...this.groups.values()]) await this.decode(group);
      }
    } catch (e) {
      for (const s of [...this.waiting.splice(0), ...[...this.groups.values()].flatMap((g) => g.rows)])
        s.reject(e);
      for (const g of this.groups.values()) this.session.free(g.cache);
      this.groups.clear();
    } finally {
      this.running = false;
    }
  }

  /** Prefills waiting sequences, one batch per adapter, and merges them into their groups. */
  private async admit(): Promise<void> {
    const byKey = new Map<string, Sequence[]>();
    for (const s of this.waiting.splice(0)) {
      if (s.req.signal?.aborted) {
        s.resolve({ tokens: [], finishReason: "abort" });
        continue;
      }
      byKey.set(s.req.adapter.key, [...(byKey.get(s.req.adapter.key) ?? []), s]);
    }
    for (const [key, seqs] of byKey) {
      const group = this.groups.get(key) ?? {
        key,
        feeds: seqs[0]?.req.adapter.feeds ?? {},
        rows: [],
        cache: null,
        pads: [],
      };
      const room = this.maxBatch - group.rows.length;
      const now = seqs.slice(0, Math.max(0, room));
      this.waiting.push(...seqs.slice(now.length));
      // Prompt logprobs need the logits of every prompt position, a vocabulary-wide projection
      // each: those requests are prefilled apart, so that the others keep paying for one.
      const scored = now.filter((s) => s.req.promptLogprobs != null);
      const plain = now.filter((s) => s.req.promptLogprobs == null);
      if (plain.length > 0) await this.join(group, plain, false);
      if (scored.length > 0) await this.join(group, scored, true);
    }
  }

  /** Prefills `now` and merges the rows still running into `group`. */
  private async join(group: Group, now: Sequence[], scored: boolean): Promise<void> {
    const prefilled = await this.prefill(now, group.feeds, scored);
    const live = now.map((s, i) => ({ s, i })).filter(({ s }) => !this.finished(s));
    if (live.length === now.length && group.rows.length === 0) {
      // A new group of prefilled rows is already laid out as a batch: no copy, and on a GPU
      // the cache stays there.
      group.cache = prefilled.cache;
      group.pads = prefilled.pads;
      group.rows.push(...now);
      this.groups.set(group.key, group);
    } else if (live.length > 0) {
      const running = group.cache === null ? null : await this.session.toHost(group.cache);
      const fresh = await this.session.toHost(prefilled.cache);
      const sources = [
        ...group.rows.map((_, i) => ({ cache: running as KvCache, row: i, pad: group.pads[i] ?? 0 })),
        ...live.map(({ i }) => ({ cache: fresh, row: i, pad: prefilled.pads[i] ?? 0 })),
      ];
      const merged = this.session.regroup(sources);
      group.cache = merged.cache;
      group.pads = merged.pads;
      group.rows.push(...live.map(({ s }) => s));
      this.groups.set(group.key, group);
    } else {
      this.session.free(prefilled.cache);
    }
  }

  /**
   * One forward pass over the prompts of `seqs`, left-padded to the longest, and their first
   * token. `scored` returns the logits of every position (prompt logprobs), not only the last.
   */
  private async prefill(
    seqs: Sequence[],
    feeds: LoraFeeds,
    scored: boolean,
  ): Promise<{ cache: KvCache; pads: number[] }> {
    const longest = Math.max(...seqs.map((s) => s.ids.length));
    const batch = seqs.length;
    const inputIds = new BigInt64Array(batch * longest);
    const mask = new BigInt64Array(batch * longest);
    const positions = new BigInt64Array(batch * longest);
    const pads = seqs.map((s) => longest - s.ids.length);
    seqs.forEach((s, r) => {
      const pad = pads[r] ?? 0;
      s.ids.forEach((id, i) => {
        inputIds[r * longest + pad + i] = BigInt(id);
        mask[r * longest + pad + i] = 1n;
        positions[r * longest + pad + i] = BigInt(i);
      });
      s.valid = s.ids.length;
    });
    const out = await this.session.step(
      {
        batch,
        seq: longest,
        inputIds,
        attentionMask: mask,
        positionIds: positions,
        logitsPositions: scored
          ? BigInt64Array.from({ length: batch * longest }, (_, i) => BigInt(i % longest))
          : new BigInt64Array(batch).fill(BigInt(longest - 1)),
        logitsCount: scored ? longest : 1,
        past: null,
      },
      feeds,
    );
    this.stats.prefills++;
    if (scored) this.scorePrompts(seqs, out.logits, pads, longest);
    this.take(seqs, out.logits, scored ? longest : 1);
    return { cache: out.present, pads };
  }

  /**
   * Sets each sequence's `promptTokens` from `[rows, longest, vocab]` logits of left-padded
   * prompts: prompt token i is scored by the logits at the position of token i - 1.
   */
  private scorePrompts(seqs: Sequence[], logits: Float32Array, pads: number[], longest: number): void {
    const vocab = this.session.manifest.dims.vocabSize;
    seqs.forEach((s, r) => {
      const top = s.req.promptLogprobs ?? 0;
      s.promptTokens = s.req.prompt.map((token, i) => {
        if (i === 0) return { token, logprob: null, top: [] };
        const at = (r * longest + (pads[r] ?? 0) + i - 1) * vocab;
        const row = logits.subarray(at, at + vocab);
        if (!allFinite(row)) s.failure ??= new NonFiniteLogitsError(s.req.adapter.key, i, "prompt");
        return scoreToken(row, token, top);
      });
    });
  }

  private async decode(group: Group): Promise<void> {
    await this.dropFinished(group);
    if (group.rows.length === 0 || group.cache === null) {
      this.groups.delete(group.key);
      return;
    }
    const batch = group.rows.length;
    const total = group.cache.length + 1;
    const mask = new BigInt64Array(batch * total);
    for (let r = 0; r < batch; r++) mask.fill(1n, r * total + (group.pads[r] ?? 0), (r + 1) * total);
    const out = await this.session.step(
      {
        batch,
        seq: 1,
        inputIds: BigInt64Array.from(group.rows, (s) => BigInt(s.ids[s.ids.length - 1] ?? 0)),
        attentionMask: mask,
        positionIds: BigInt64Array.from(group.rows, (s) => BigInt(s.valid)),
        logitsPositions: new BigInt64Array(batch),
        logitsCount: 1,
        past: group.cache,
      },
      group.feeds,
    );
    this.stats.decodeSteps++;
    this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, batch);
    this.session.free(group.cache);
    group.cache = out.present;
    for (const s of group.rows) s.valid++;
    this.take(group.rows, out.logits);
    await this.dropFinished(group);
    if (group.rows.length === 0) this.groups.delete(group.key);
  }

  /**
   * Samples one token per row from `[rows, positions, vocab]` logits, from each row's last
   * position, after the row's logits processors.
   */
  private take(seqs: Sequence[], logits: Float32Array, positions = 1): void {
    const vocab = this.session.manifest.dims.vocabSize;
    seqs.forEach((s, r) => {
      if (s.failure !== undefined) return;
      const at = ((r + 1) * positions - 1) * vocab;
      const row = logits.subarray(at, at + vocab);
      if (!allFinite(row)) {
        s.failure = new NonFiniteLogitsError(s.req.adapter.key, s.tokens.length);
        return;
      }
      const processed = s.processors === null ? row : s.processors.apply(row);
      const t = sampleToken(processed, s.req.sampling, s.req.rng, s.req.logprobs);
      s.processors?.record(t.token);
      s.tokens.push(t);
      s.ids.push(t.token);
      this.stats.tokens++;
      s.req.onToken?.(t);
    });
  }

  /** Resolves a sequence that has reached a stop condition; true if it did. */
  private finished(s: Sequence): boolean {
    const last = s.tokens[s.tokens.length - 1];
    if (s.failure !== undefined) {
      s.reject(s.failure);
      return true;
    }
    // vLLM min_tokens: a stop condition counts once more than minTokens tokens exist.
    const mayStop = s.tokens.length > (s.req.minTokens ?? 0);
    let reason: FinishReason | null = null;
    if (s.req.signal?.aborted) reason = "abort";
    else if (mayStop && last !== undefined && s.req.stopTokens.has(last.token)) reason = "stop";
    else if (mayStop && s.req.shouldStop?.() === true) reason = "stop";
    else if (s.tokens.length >= s.req.maxTokens) reason = "length";
    if (reason === null) return false;
    const result: GenerationResult = { tokens: s.tokens, finishReason: reason };
    if (s.promptTokens !== undefined) result.promptTokens = s.promptTokens;
    s.resolve(result);
    return true;
  }

  private async dropFinished(group: Group): Promise<void> {
    const keep = group.rows.map((s, i) => ({ s, i })).filter(({ s }) => !this.finished(s));
    if (keep.length === group.rows.length || group.cache === null) return;
    if (keep.length > 0) {
      const cache = await this.session.toHost(group.cache);
      const merged = this.session.regroup(keep.map(({ i }) => ({ cache, row: i, pad: group.pads[i] ?? 0 })));
      group.cache = merged.cache;
      group.pads = merged.pads;
    } else {
      this.session.free(group.cache);
      group.cache = null;
      group.pads = [];
    }
    group.rows = keep.map(({ s }) => s);
  }
}
