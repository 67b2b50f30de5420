/**
 * One ORT session over built model artifacts. It is created once per process; adapters change only
 * the feeds. `sessionsCreated` counts creations so that tests and /metrics can prove it.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  IO,
  type ModelArtifactsError,
  type ModelManifest,
  readModelManifest,
} from "../model-format/index.ts";
import type { ModelSpec } from "../model-spec/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { decodeStepCopies, kvPlacement, type StepCopy } from "./device-copies.ts";
import { type ExecutionProvider, ExecutionProviderError, providerFailure } from "./execution-provider.ts";
import { GpuDownloader, GpuFeeds } from "./gpu-transfer.ts";
import { toGqaStep } from "./gqa-step.ts";
import { type KvPadding, type KvShape, kvArray, kvData, type RowSource, relayout } from "./kv-layout.ts";
import { type LoraFeeds, packLoraFeeds } from "./lora-feeds.ts";
import { disableOrtTelemetry } from "./ort-telemetry.ts";

/**
 * Keys and values of every layer, `[batch, kvHeads, capacity, headDim]` each. Rows are padded to
 * `length` columns on the `padding` side: left (every row's keys end at column `length`; the `ops`
 * graphs, which mask the padding) or right (every row's keys start at column 0; GroupQueryAttention
 * graphs, told each row's length by `seqlens_k`). Either way a row's padding is `length` minus its
 * keys, the `pads` that `regroup` returns and callers' masks are built from.
 *
 * Two kinds, by the graph the session runs (docs/architecture.md, "The KV cache"):
 * - On the CPU, the session owns the cache in host buffers with spare columns (`capacity` >
 *   `length`), which the graph sees masked out. A step writes its new keys and values into the
 *   spare columns of the cache it was given and returns that same cache, longer; when the spare
 *   columns run out it moves to larger buffers.
 * - On the WebGPU EP, each step returns a new cache of exactly `length` columns that stays in GPU
 *   memory (`location: "gpu-buffer"`): feeding it back as the next past costs no copy. Such a cache
 *   must be given to `DecoderSession.free` once dropped, or copied to the host with `toHost` (which
 *   frees it) before its data is read.
 */
export interface KvCache {
  batch: number;
  length: number;
  capacity: number;
  padding: KvPadding;
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

/** Spare columns a host cache gets when it is made or outgrows its buffers. */
const SPARE_COLUMNS = 64;

/**
 * One decoder step for `batch` rows of `seq` new tokens each (a prefill, or one token per row when
 * decoding), on top of the rows' `past` cache (null: nothing yet).
 */
export interface StepInput {
  batch: number;
  /** New tokens per row this step. */
  seq: number;
  /** int64 [batch, seq] */
  inputIds: BigInt64Array;
  /** int64 [batch, past + seq]: 1 for real tokens, 0 for padding */
  attentionMask: BigInt64Array;
  /** int64 [batch, seq] */
  positionIds: BigInt64Array;
  /** int64 [batch, k]: positions within this step's tokens whose logits to return */
  logitsPositions: BigInt64Array;
  logitsCount: number;
  past: KvCache | null;
}

/**
 * What a step returns: float32 logits `[batch, logitsCount, vocab]` at the requested positions, and
 * the cache with this step's keys and values added.
 */
export interface StepOutput {
  /** [batch, logitsCount, vocab] */
  logits: Float32Array;
  present: KvCache;
}

/**
 * How the ORT session runs: execution providers in order of preference (ORT's names; `cpu` by
 * default), intra-op threads (ORT's default when absent) and the CUDA device.
 *
 * On `cuda`, onnxruntime-node 1.29's binding passes only `deviceId` to the CUDA EP
 * (`js/node/src/session_options_helper.cc`): ORT's other CUDA options (`use_tf32`, the arena's
 * `gpu_mem_limit` and `arena_extend_strategy`, `enable_cuda_graph`) keep their defaults. TF32 can
 * still be turned off for the process with `NVIDIA_TF32_OVERRIDE=0`, which cuBLAS honours.
 */
export interface DecoderSessionOptions {
  /** Tried in order; the first decides where the KV cache lives. Default `["cpu"]`. */
  executionProviders?: ExecutionProvider[];
  intraOpThreads?: number;
  /** The CUDA device (ordinal among those visible, `CUDA_VISIBLE_DEVICES`) for `cuda`; default 0. */
  cudaDeviceId?: number;
  /**
   * Diagnostics: ORT's profiler on, writing a Chrome-trace JSON whose name starts with this path
   * (ORT appends `_<date>.json`) once `endProfiling` is called. Every node's kernel time, op type
   * and execution provider are in it. Off by default: it slows every run.
   */
  profileFilePrefix?: string;
}

/**
 * An ORT session over the model at `path` (or its bytes) with the options every loracast graph
 * runs under, less what `overrides` changes.
 * Throws `ExecutionProviderError` when a requested provider's library is missing or does not load,
 * and ORT's own error for anything else (a missing or corrupt graph).
 */
export async function createSession(
  path: string | Uint8Array,
  options: DecoderSessionOptions,
  overrides: Pick<
    ort.InferenceSession.SessionOptions,
    | "graphOptimizationLevel"
    | "enableMemPattern"
    | "preferredOutputLocation"
    | "optimizedModelFilePath"
    | "extra"
    | "logSeverityLevel"
  > = {},
): Promise<ort.InferenceSession> {
  disableOrtTelemetry();
  const executionProviders = options.executionProviders ?? ["cpu"];
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: executionProviders.map((name) =>
      name === "cuda" ? { name, deviceId: options.cudaDeviceId ?? 0 } : name,
    ),
    ...(options.intraOpThreads !== undefined ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(options.profileFilePrefix !== undefined
      ? { enableProfiling: true, profileFilePrefix: options.profileFilePrefix }
      : {}),
    graphOptimizationLevel: "all",
    ...overrides,
  };
  try {
    return await (typeof path === "string"
      ? ort.InferenceSession.create(path, sessionOptions)
      : ort.InferenceSession.create(path, sessionOptions));
  } catch (e) {
    throw providerFailure(e, executionProviders) ?? e;
  }
}

let created = 0;

/** How many ORT sessions the decoders of this process have created (with the WebGPU uploader). */
export function sessionsCreated(): number {
  return created;
}

/**
 * The model's one ORT inference session (`DecoderSession.load` over a model directory): `step` runs
 * the decoder over a batch with an adapter's factors as feeds; caches are re-batched with `regroup`
 * and, on the GPU, released with `free`. Call `release` once, when the process is done with it.
 * `load` fails with `ModelArtifactsError` (unreadable artifacts) or `ExecutionProviderError` (the
 * requested provider cannot load).
 */
export class DecoderSession {
  private constructor(
    readonly manifest: ModelManifest,
    readonly spec: ModelSpec,
    private readonly session: ort.InferenceSession,
    /** Present on the WebGPU EP: where LoRA factors are moved before a step reads them. */
    private readonly gpuFeeds: GpuFeeds | null,
    /** Present on the WebGPU EP: how caches come back to the host when a batch changes. */
    private readonly downloader: GpuDownloader | null,
    /** The graph returns only each step's new keys and values; the cache lives in host buffers. */
    private readonly appending: boolean,
    /** The ONNX file the session runs: `model.append.onnx` when appending, else `model.onnx`. */
    readonly graphPath: string,
    /** The execution provider the session prefers (the first asked for). */
    readonly ep: ExecutionProvider,
  ) {
    this.padding = manifest.decoder.attention === "gqa" ? "right" : "left";
  }

  /** Which side rows are padded on: right for GroupQueryAttention graphs (`gqa-step.ts`). */
  private readonly padding: KvPadding;

  /** Zero-length past caches, one per batch size seen; they are immutable, so runs share them. */
  private readonly emptyPast: KvCache[] = [];

  static async load(
    dir: string,
    options: DecoderSessionOptions = {},
  ): Promise<Result<DecoderSession, ModelArtifactsError | ExecutionProviderError>> {
    const read = await readModelManifest(dir);
    if (!read.ok) return read;
    const { manifest, spec } = read.value;
    // Every decode step's present is the next step's past: where the EP lets outputs stay on the
    // device (WebGPU), leave it there; without this, each step copied the whole cache to the host
    // and back (docs/benchmarks.md). On CUDA onnxruntime-node cannot (device-copies.ts): the cache
    // lives on the host, like the CPU's, and the append graph returns only the new columns.
    const ep = (options.executionProviders ?? ["cpu"])[0] ?? "cpu";
    const onGpu = kvPlacement(ep) === "device";
    const appending = !onGpu && manifest.files.append !== undefined;
    const presents = Array.from({ length: manifest.dims.numLayers }, (_, l) => [
      IO.presentKey(l),
      IO.presentValue(l),
    ]).flat();
    const graphPath = join(dir, appending ? (manifest.files.append ?? "") : manifest.files.model);
    let session: ort.InferenceSession;
    try {
      session = await createSession(
        graphPath,
        options,
        onGpu ? { preferredOutputLocation: Object.fromEntries(presents.map((n) => [n, "gpu-buffer"])) } : {},
      );
    } catch (e) {
      if (e instanceof ExecutionProviderError) return err(e);
      throw e;
    }
    created++;
    const factors = session.inputNames.filter((n) => n.startsWith("base_model."));
    const gpuFeeds = onGpu && factors.length > 0 ? await GpuFeeds.create(factors) : null;
    if (gpuFeeds !== null) created++;
    const downloader = onGpu
      ? await GpuDownloader.create(presents.length, manifest.decoder.kvCacheDtype ?? "float32")
      : null;
    if (downloader !== null) created++;
    return ok(new DecoderSession(manifest, spec, session, gpuFeeds, downloader, appending, graphPath, ep));
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
   * packed per packed module (`packLoraFeeds`, the manifest's `decoder.packedModules`), once per
   * feeds object. Call it when an adapter is activated, so that its first step does not pay for the
   * packing; `step` packs what it is given otherwise. A graph without LoRA inputs (a merged base)
   * takes the feeds as they are. Throws when the feeds lack a module of the base.
   */
  prepare(lora: LoraFeeds): LoraFeeds {
    if (this.spec.modules.size === 0) return lora;
    return packLoraFeeds(this.spec, this.manifest.decoder.packedModules, lora);
  }

  /**
   * The host↔device copies of one decode step of this session (one token for each of `batch` rows
   * over a past of `pastColumns` columns, spare ones included) with `lora`'s factors, largest first.
   */
  decodeCopies(batch: number, pastColumns: number, lora: LoraFeeds): StepCopy[] {
    const { numLayers, numKvHeads, headDim, vocabSize } = this.manifest.dims;
    // Host feeds only: a factor already on the device is not copied.
    const factors = Object.values(this.prepare(lora)).filter((t) => t.location === "cpu");
    return decodeStepCopies({
      ep: this.ep,
      batch,
      pastColumns,
      layers: numLayers,
      kvHeads: numKvHeads,
      headDim,
      vocab: vocabSize,
      factorTensors: factors.length,
      factorBytes: factors.reduce((n, t) => n + (t.data as ArrayBufferView).byteLength, 0),
      factorsResident: this.gpuFeeds !== null,
      appendGraph: this.appending,
      kvCacheDtype: this.kvShape.dtype,
    });
  }

  /** One forward pass over `seq` new tokens per row, with an adapter's feeds (per module or `prepare`d). */
  async step(input: StepInput, perModule: LoraFeeds): Promise<StepOutput> {
    const { batch, seq } = input;
    const past = input.past ?? this.empty(batch);
    const total = past.length + seq;
    const lora = this.prepare(perModule);
    const gqa = this.padding === "right" ? toGqaStep(input, past.length) : null;
    const feeds: Record<string, ort.Tensor> = {
      ...(this.gpuFeeds === null ? lora : await this.gpuFeeds.place(lora)),
      [IO.inputIds]: new ort.Tensor("int64", gqa?.inputIds ?? input.inputIds, [batch, seq]),
      [IO.logitsPositions]: new ort.Tensor("int64", gqa?.logitsPositions ?? input.logitsPositions, [
        batch,
        input.logitsCount,
      ]),
      ...(gqa === null
        ? {
            [IO.attentionMask]: this.maskTensor(input.attentionMask, past, seq),
            [IO.positionIds]: new ort.Tensor("int64", input.positionIds, [batch, seq]),
          }
        : {
            [IO.seqlensK]: new ort.Tensor("int32", gqa.seqlensK, [batch]),
            [IO.totalSequenceLength]: new ort.Tensor("int32", Int32Array.of(gqa.total), []),
          }),
    };
    const layers = this.manifest.dims.numLayers;
    for (let l = 0; l < layers; l++) {
      feeds[IO.pastKey(l)] = past.keys[l] as ort.Tensor;
      feeds[IO.pastValue(l)] = past.values[l] as ort.Tensor;
    }
    const out = await this.session.run(feeds);
    const pick = (name: string): ort.Tensor => {
      const t = out[name];
      if (t === undefined) throw new Error(`session output ${name} missing`);
      return t;
    };
    const logits = pick(IO.logits).data as Float32Array;
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
    const cache = total <= past.capacity ? past : this.grow(past, total + SPARE_COLUMNS);
    const { kvHeads, headDim: d, dtype } = this.kvShape;
    // Left padding: every row's new keys go after the cache's `length` columns; right padding
    // (GQA): after the row's own keys.
    const column = (b: number) => gqa?.pastRows[b] ?? past.length;
    const write = (dst: ort.Tensor, src: ort.Tensor) => {
      const to = kvData(dst, dtype);
      const from = kvData(src, dtype);
      for (let row = 0; row < batch * kvHeads; row++) {
        const at = (row * cache.capacity + column(Math.floor(row / kvHeads))) * d;
        to.set(from.subarray(row * seq * d, (row + 1) * seq * d), at);
      }
    };
    for (let l = 0; l < layers; l++) {
      write(cache.keys[l] as ort.Tensor, pick(IO.appendedKey(l)));
      write(cache.values[l] as ort.Tensor, pick(IO.appendedValue(l)));
    }
    cache.length = total;
    return { logits, present: cache };
  }

  /**
   * The caller's mask covers `past.length + seq` columns; a host cache has spare columns between
   * its keys and the new ones, which the graph must see masked out.
   */
  private maskTensor(mask: BigInt64Array, past: KvCache, seq: number): ort.Tensor {
    const batch = past.batch;
    const given = past.length + seq;
    const wide = past.capacity + seq;
    if (wide === given) return new ort.Tensor("int64", mask, [batch, given]);
    const out = new BigInt64Array(batch * wide);
    for (let r = 0; r < batch; r++) {
      out.set(mask.subarray(r * given, r * given + past.length), r * wide);
      out.set(mask.subarray(r * given + past.length, (r + 1) * given), r * wide + past.capacity);
    }
    return new ort.Tensor("int64", out, [batch, wide]);
  }

  /** A host cache with the rows of `cache` and room for `capacity` columns. */
  private grow(cache: KvCache, capacity: number): KvCache {
    const rows = Array.from({ length: cache.batch }, (_, row) => ({ cache, row, pad: 0 }));
    return relayout(rows, this.kvShape, capacity - cache.length, this.padding).cache;
  }

  /**
   * A new cache whose row i is `sources[i]`, padded to the longest on the side the graph wants;
   * with spare columns on the CPU. Sources must be on the host (`toHost`).
   */
  regroup(sources: readonly RowSource[]): { cache: KvCache; pads: number[] } {
    return relayout(sources, this.kvShape, this.appending ? SPARE_COLUMNS : 0, this.padding);
  }

  /** Frees the GPU memory of a cache that is no longer needed; host caches need nothing. */
  free(cache: KvCache | null): void {
    if (cache === null || cache.length === 0) return;
    for (const t of [...cache.keys, ...cache.values]) if (t.location === "gpu-buffer") t.dispose();
  }

  /** The cache with its data on the host, readable by `relayout`; a GPU cache is copied and freed. */
  async toHost(cache: KvCache): Promise<KvCache> {
    const all = [...cache.keys, ...cache.values];
    if (this.downloader === null || all.every((t) => t.location === "cpu")) return cache;
    const host = await this.downloader.toHost(all);
    this.free(cache);
    const layers = cache.keys.length;
    return { ...cache, keys: host.slice(0, layers), values: host.slice(layers) };
  }

  /** Ends ORT's profiler (`profileFilePrefix`) and writes its file; a no-op without one. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.gpuFeeds?.release();
    await this.downloader?.release();
  }
}
