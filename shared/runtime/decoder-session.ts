/**
 * The decoder over built model artifacts: one ORT session (two with the base graph) created once
 * per process; adapters change only the feeds. `sessionsCreated` (open-runners.ts) counts
 * creations so that tests and /metrics can prove it. A step's contract and feeds are in
 * step-feeds.ts, the cache it takes and returns (and a host cache's appends) in kv-cache.ts.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  IO,
  loraALayout,
  type ModelArtifactsError,
  type ModelManifest,
  readModelManifest,
} from "../model-format/index.ts";
import type { ModelSpec } from "../model-spec/index.ts";
import { DeviceTensor } from "../ort-native/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import type { Runner } from "./decoder-runner.ts";
import { decodeStepCopies, type StepCopy } from "./device-copies.ts";
import { type ExecutionProvider, ExecutionProviderError } from "./execution-provider.ts";
import { appendToHostCache, type KvCache, type KvTensor, SPARE_COLUMNS } from "./kv-cache.ts";
import { type KvPadding, type KvShape, kvArray, type RowSource, relayout } from "./kv-layout.ts";
import { isBaseFeeds, type LoraFeeds, packLoraFeeds } from "./lora-feeds.ts";
import {
  addonWithoutFusedLora,
  chooseBackend,
  OrtBackendError,
  type ResolvedBackend,
} from "./native-decoder.ts";
import { openRunners } from "./open-runners.ts";
import type { ResidentCounts } from "./resident-feeds.ts";
import type { DecoderSessionOptions } from "./session-options.ts";
import { type StepInput, type StepOutput, stepFeeds } from "./step-feeds.ts";

/** Where a session runs base-only requests (`DecoderSessionOptions.baseGraph`, `chooseBaseGraph`). */
export interface BaseGraphState {
  /** The decoder graph without LoRA inputs it runs them on; null: the LoRA graph, with rank-0 factors. */
  graphPath: string | null;
  /** `on: asked for`, `auto on <ep>`, or why there is none. */
  reason: string;
}

/**
 * The model's ORT inference session (`DecoderSession.load` over a model directory): `step` runs
 * the decoder over a batch with an adapter's factors as feeds, and a base-only batch (`baseFeeds`)
 * on the decoder graph without LoRA inputs where the session has one (`baseGraph`); caches are
 * re-batched with `regroup` and, on the GPU, released with `free`. Call `release` once, when the
 * process is done with it. `load` fails with `ModelArtifactsError` (unreadable artifacts, or a base
 * graph asked for and missing) or `ExecutionProviderError` (the requested provider cannot load).
 */
export class DecoderSession {
  private constructor(
    readonly manifest: ModelManifest,
    readonly spec: ModelSpec,
    private readonly run: Runner,
    /** The runner over the base graph, or null (base requests run `run`). */
    private readonly baseRun: Runner | null,
    /** The graph returns only each step's new keys and values; the cache lives in host buffers. */
    private readonly appending: boolean,
    /** The ONNX file adapters' steps run: `model.append.onnx` when appending, else `model.onnx`. */
    readonly graphPath: string,
    /** Where base-only requests run, and why. */
    readonly baseGraph: BaseGraphState,
    /** The execution provider the session prefers (the first asked for). */
    readonly ep: ExecutionProvider,
    /** The binding the session runs on (`DecoderSessionOptions.backend` once decided). */
    readonly backend: ResolvedBackend,
    /** Why that binding: `asked for`, or the reason `auto` chose it (the addon's load failure...). */
    readonly backendReason: string,
  ) {
    this.padding = manifest.decoder.attention === "gqa" ? "right" : "left";
  }

  /** Which side rows are padded on: right for GroupQueryAttention graphs (`gqa-step.ts`). */
  private readonly padding: KvPadding;

  /** Zero-length past caches, one per batch size seen; they are immutable, so runs share them. */
  private readonly emptyPast: KvCache[] = [];

  /**
   * A session over the model directory `dir` on the binding `options.backend` decides
   * (`chooseBackend`), with a second runner over the base graph as `options.baseGraph` decides
   * (`chooseBaseGraph`). Fails with `ModelArtifactsError` (unreadable artifacts, or `baseGraph: on`
   * for a model without base graphs), `ExecutionProviderError` (the provider cannot load) or
   * `OrtBackendError` (ort-native forced and unusable, a `shrink-expand` model without an addon
   * that runs it, or `cudaTf32: false` that the stock binding cannot honour); throws a RangeError for `cudaTf32` on another EP than cuda.
   */
  static async load(
    dir: string,
    options: DecoderSessionOptions = {},
  ): Promise<Result<DecoderSession, ModelArtifactsError | ExecutionProviderError | OrtBackendError>> {
    const read = await readModelManifest(dir);
    if (!read.ok) return read;
    const { manifest, spec } = read.value;
    const ep = (options.executionProviders ?? ["cpu"])[0] ?? "cpu";
    if (options.cudaTf32 !== undefined && ep !== "cuda")
      throw new RangeError(`cudaTf32 is a CUDA option, given for a session on ${ep}`);
    const chosen = chooseBackend(options.backend ?? "auto", ep, {
      profiling: options.profileFilePrefix !== undefined,
      loraOp: manifest.decoder.loraOp ?? "gemm",
    });
    if (!chosen.ok) return chosen;
    const choice = chosen.value;
    // The stock binding cannot pass `use_tf32`; cuBLAS honours the process-wide override instead.
    if (
      choice.backend === "onnxruntime-node" &&
      options.cudaTf32 === false &&
      process.env.NVIDIA_TF32_OVERRIDE !== "0"
    )
      return err(
        new OrtBackendError(
          `cudaTf32: false needs the ort-native backend (${choice.reason}) or NVIDIA_TF32_OVERRIDE=0`,
        ),
      );
    try {
      const opened = await openRunners(dir, manifest, options, ep, choice);
      if (!opened.ok) return opened;
      const { run, graph, appending, baseRun, base } = opened.value;
      const baseGraph = { graphPath: base.file === null ? null : join(dir, base.file), reason: base.reason };
      return ok(
        new DecoderSession(
          manifest,
          spec,
          run,
          baseRun,
          appending,
          join(dir, graph),
          baseGraph,
          ep,
          choice.backend,
          choice.reason,
        ),
      );
    } catch (e) {
      if (e instanceof ExecutionProviderError) return err(e);
      const older = addonWithoutFusedLora(e, manifest.decoder.loraOp);
      if (older !== null) return err(older);
      throw e;
    }
  }

  private empty(batch: number): KvCache {
    const found = this.emptyPast.find((c) => c.batch === batch);
    if (found !== undefined) return found;
    const { layers, kvHeads, headDim, dtype } = this.kvShape;
    const make = () => new ort.Tensor(dtype, kvArray(dtype, 0), [batch, kvHeads, 0, headDim]);
    const cache: KvCache = {
      batch,
      length: 0,
      capacity: 0,
      padding: this.padding,
      keys: Array.from({ length: layers }, make),
      values: Array.from({ length: layers }, make),
    };
    this.emptyPast.push(cache);
    return cache;
  }

  get kvShape(): KvShape {
    const { numLayers, numKvHeads, headDim } = this.manifest.dims;
    return {
      layers: numLayers,
      kvHeads: numKvHeads,
      headDim,
      dtype: this.manifest.decoder.kvCacheDtype ?? "float32",
    };
  }

  /**
   * An adapter's per-module feeds (`adapterFeeds`, `baseFeeds`) as this session's graph takes them:
   * packed per packed module (`packLoraFeeds`, the manifest's `decoder.packedModules`), with A in
   * the layout of the graph's `decoder.loraForm` (`loraALayout`), once per feeds object. Call it when an adapter is activated, so that its first step does not pay for the
   * packing; `step` packs what it is given otherwise. A graph without LoRA inputs (a merged base)
   * takes the feeds as they are. Throws when the feeds lack a module of the base.
   */
  prepare(lora: LoraFeeds): LoraFeeds {
    if (this.spec.modules.size === 0) return lora;
    const layout = loraALayout(this.manifest.decoder.loraForm ?? "gemm");
    return packLoraFeeds(this.spec, this.manifest.decoder.packedModules, lora, layout);
  }

  /**
   * The runner a step with `feeds` runs on, and the factors it takes: base feeds (`isBaseFeeds`)
   * go to the base graph, with none, where the session has one.
   */
  private route(feeds: LoraFeeds): { runner: Runner; factors: LoraFeeds } {
    if (this.baseRun !== null && isBaseFeeds(feeds)) return { runner: this.baseRun, factors: {} };
    return { runner: this.run, factors: this.prepare(feeds) };
  }

  /**
   * The host↔device copies of one decode step of this session (one token for each of `batch` rows
   * over a past of `pastColumns` columns, spare ones included) with `lora`'s factors, largest first.
   * A base step on the base graph copies no factors.
   */
  decodeCopies(batch: number, pastColumns: number, lora: LoraFeeds): StepCopy[] {
    const { numLayers, numKvHeads, headDim, vocabSize } = this.manifest.dims;
    // Host feeds only: a factor already on the device is not copied.
    const factors = Object.values(this.route(lora).factors).filter((t) => t.location === "cpu");
    return decodeStepCopies({
      ep: this.ep,
      kv: this.run.kv,
      batch,
      pastColumns,
      layers: numLayers,
      kvHeads: numKvHeads,
      headDim,
      vocab: vocabSize,
      factorTensors: factors.length,
      factorBytes: factors.reduce((n, t) => n + (t.data as ArrayBufferView).byteLength, 0),
      factorsResident: this.run.factorsResident,
      appendGraph: this.appending,
      kvCacheDtype: this.kvShape.dtype,
    });
  }

  /**
   * One forward pass over `seq` new tokens per row, with an adapter's feeds (per module or
   * `prepare`d); base feeds (`baseFeeds`) run on the base graph where the session has one. A cache
   * from either graph can be the other's past: both have the same cache inputs and outputs.
   */
  async step(input: StepInput, perModule: LoraFeeds): Promise<StepOutput> {
    const { batch, seq } = input;
    const past = input.past ?? this.empty(batch);
    const total = past.length + seq;
    const { runner, factors } = this.route(perModule);
    const layers = this.manifest.dims.numLayers;
    const { feeds, gqa } = stepFeeds(input, past, this.padding, layers);
    const { logits, outputs } = await runner.run(feeds, factors);
    const pick = (name: string): KvTensor => {
      const t = outputs[name];
      if (t === undefined) throw new Error(`session output ${name} missing`);
      return t;
    };
    if (!this.appending) {
      return {
        logits,
        present: {
          batch,
          length: total,
          capacity: total,
          padding: this.padding,
          keys: Array.from({ length: layers }, (_, l) => pick(IO.presentKey(l))),
          values: Array.from({ length: layers }, (_, l) => pick(IO.presentValue(l))),
        },
      };
    }
    const present = appendToHostCache({
      past,
      seq,
      output: pick,
      shape: this.kvShape,
      padding: this.padding,
      pastRows: gqa?.pastRows ?? null,
    });
    return { logits, present };
  }

  /**
   * A new cache whose row i is `sources[i]`, padded to the longest on the side the graph wants;
   * with spare columns on the CPU. Sources must be on the host (`toHost`).
   */
  regroup(sources: readonly RowSource[]): { cache: KvCache; pads: number[] } {
    return relayout(sources, this.kvShape, this.appending ? SPARE_COLUMNS : 0, this.padding);
  }

  /** Frees the device memory of a cache that is no longer needed; host caches need nothing. */
  free(cache: KvCache | null): void {
    if (cache === null || cache.length === 0) return;
    for (const t of [...cache.keys, ...cache.values]) {
      if (t instanceof DeviceTensor) t.release();
      else if (t.location === "gpu-buffer") t.dispose();
    }
  }

  /**
   * The cache with its data on the host, readable by `relayout`; a device cache is copied and
   * freed. Either runner's caches: the addon downloads each tensor itself, and the WebGPU
   * downloader is shared by both runners.
   */
  async toHost(cache: KvCache): Promise<KvCache> {
    const all = [...cache.keys, ...cache.values];
    const host = await this.run.toHost(all);
    if (host.every((t, i) => t === all[i])) return cache;
    this.free(cache);
    const layers = cache.keys.length;
    return { ...cache, keys: host.slice(0, layers), values: host.slice(layers) };
  }

  /**
   * How many adapters' factors this session uploaded to the device, and freed once their feeds were
   * collected; null where factors are fed from the host every step (CPU and CUDA on the stock binding).
   */
  residentFactors(): ResidentCounts | null {
    return this.run.residentStats();
  }

  /**
   * Steps run so far on each graph: `lora`, the LoRA graph (adapters, and base requests where the
   * session has no base graph); `base`, the base graph. For tests and /metrics.
   */
  stepCounts(): { lora: number; base: number } {
    return { lora: this.run.steps, base: this.baseRun?.steps ?? 0 };
  }

  /** Ends ORT's profiler (`profileFilePrefix`) and writes its file; a no-op without one. */
  endProfiling(): void {
    this.run.endProfiling();
    this.baseRun?.endProfiling();
  }

  /** Frees the sessions and their uploaders; call once, when the process is done with it. */
  async release(): Promise<void> {
    // The LoRA runner owns what the two share (the WebGPU downloader): it goes last.
    await this.baseRun?.release();
    await this.run.release();
  }
}
