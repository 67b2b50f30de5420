/**
 * Continuous batching over one decoder session. Sequences that pin the same adapter version share
 * a batch: the graph takes one set of LoRA factors per run, so each adapter group costs one session
 * run per decode step (docs/architecture.md weighs this against per-row LoRA). New requests are
 * prefilled together, then merged into their group's running batch between decode steps, so a
 * long generation never blocks a new one for more than a step.
 */
import type { Rng } from "../random/index.ts";
import type { DecoderSession, KvCache } from "./decoder-session.ts";
import { allFinite } from "./logits.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import { type SampledToken, type SamplingParams, sampleToken } from "./sampling.ts";

export interface GenerationRequest {
  prompt: readonly number[];
  /** The adapter version pinned at admission. Requests with the same key share batches. */
  adapter: { key: string; feeds: LoraFeeds };
  sampling: SamplingParams;
  maxTokens: number;
  stopTokens: ReadonlySet<number>;
  /**
   * Checked after each token, once `onToken` has seen it; true ends the sequence with reason
   * "stop". The caller keeps whatever state it needs (stop strings track the decoded text).
   */
  shouldStop?: () => boolean;
  /** Top alternatives to return with each token; null asks for no logprobs at all. */
  logprobs: number | null;
  rng: Rng;
  /** vLLM min_tokens: stop tokens (and shouldStop) cannot end the sequence before this many tokens. */
  minTokens?: number;
  /** vLLM prompt_logprobs / OpenAI echo+logprobs: top alternatives at each prompt position; null = none. */
  promptLogprobs?: number | null;
  signal?: AbortSignal;
  onToken?: (t: SampledToken) => void;
}

export type FinishReason = "stop" | "length" | "abort";

export interface GenerationResult {
  tokens: SampledToken[];
  /** One entry per prompt token when promptLogprobs was asked (the first has logprob null, top []). */
  promptTokens?: SampledToken[];
  finishReason: FinishReason;
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
    readonly step: number,
  ) {
    super(
      `adapter ${adapter} produced non-finite logits at generated token ${step}: its LoRA effect overflows float32 (check lora_alpha / alpha_pattern and the factor magnitudes)`,
    );
  }
}

interface Sequence {
  req: GenerationRequest;
  /** Set when a step's logits were non-finite; the sequence is rejected with it at the next check. */
  failure?: NonFiniteLogitsError;
  tokens: SampledToken[];
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

export interface EngineOptions {
  /** Most sequences decoded together in one adapter group. @default 16 */
  maxBatch?: number;
}

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

  /** Sequences waiting for a prefill or being decoded. */
  get load(): number {
    let n = this.waiting.length;
    for (const g of this.groups.values()) n += g.rows.length;
    return n;
  }

  generate(req: GenerationRequest): Promise<GenerationResult> {
    if (req.prompt.length === 0) return Promise.reject(new Error("prompt is empty"));
    return new Promise((resolve, reject) => {
      this.waiting.push({ req, tokens: [], ids: [...req.prompt], valid: 0, resolve, reject });
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
      if (now.length === 0) continue;
      const prefilled = await this.prefill(now, group.feeds);
      const live = now.map((s, i) => ({ s, i })).filter(({ s }) => !this.finished(s));
      if (live.length === now.length && group.rows.length === 0) {
        // A new group of prefilled rows is already laid out as a batch: no copy, and on a GPU
        // the cache stays there.
        group.cache = prefilled.cache;
        group.pads = prefilled.pads;
        group.rows.push(...now);
        this.groups.set(key, group);
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
        this.groups.set(key, group);
      } else {
        this.session.free(prefilled.cache);
      }
    }
  }

  private async prefill(seqs: Sequence[], feeds: LoraFeeds): Promise<{ cache: KvCache; pads: number[] }> {
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
        logitsPositions: new BigInt64Array(batch).fill(BigInt(longest - 1)),
        logitsCount: 1,
        past: null,
      },
      feeds,
    );
    this.stats.prefills++;
    this.take(seqs, out.logits);
    return { cache: out.present, pads };
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

  /** Samples one token per row from `[rows, vocab]` logits. */
  private take(seqs: Sequence[], logits: Float32Array): void {
    const vocab = this.session.manifest.dims.vocabSize;
    seqs.forEach((s, r) => {
      const row = logits.subarray(r * vocab, (r + 1) * vocab);
      if (!allFinite(row)) {
        s.failure = new NonFiniteLogitsError(s.req.adapter.key, s.tokens.length);
        return;
      }
      const t = sampleToken(row, s.req.sampling, s.req.rng, s.req.logprobs);
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
    let reason: FinishReason | null = null;
    if (s.req.signal?.aborted) reason = "abort";
    else if (last !== undefined && s.req.stopTokens.has(last.token)) reason = "stop";
    else if (s.req.shouldStop?.() === true) reason = "stop";
    else if (s.tokens.length >= s.req.maxTokens) reason = "length";
    if (reason === null) return false;
    s.resolve({ tokens: s.tokens, finishReason: reason });
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
