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
} from "../model-builder/index.ts";
import type { ModelSpec } from "../model-spec/index.ts";
import { ok, type Result } from "../result/index.ts";
import { GpuDownloader, GpuFeeds } from "./gpu-transfer.ts";
import type { LoraFeeds } from "./lora-feeds.ts";

/**
 * Keys and values of every layer, `[batch, kvHeads, length, headDim]` each. On the WebGPU EP a
 * step's present stays in GPU memory (`location: "gpu-buffer"`): feeding it back as the next past
 * costs no copy. Such a cache must be given to `DecoderSession.free` once dropped, or copied to
 * the host with `toHost` (which frees it) before its data is read.
 */
export interface KvCache {
  batch: number;
  length: number;
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

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

export interface StepOutput {
  /** [batch, logitsCount, vocab] */
  logits: Float32Array;
  present: KvCache;
}

export interface DecoderSessionOptions {
  executionProviders?: ("cpu" | "webgpu")[];
  intraOpThreads?: number;
}

/** An ORT session with the options every loracast graph runs under, less what `overrides` changes. */
export function createSession(
  path: string,
  options: DecoderSessionOptions,
  overrides: Pick<
    ort.InferenceSession.SessionOptions,
    "graphOptimizationLevel" | "enableMemPattern" | "preferredOutputLocation"
  > = {},
): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, {
    executionProviders: options.executionProviders ?? ["cpu"],
    ...(options.intraOpThreads !== undefined ? { intraOpNumThreads: options.intraOpThreads } : {}),
    graphOptimizationLevel: "all",
    ...overrides,
  });
}

let created = 0;

/** How many ORT sessions the decoders of this process have created (with the WebGPU uploader). */
export function sessionsCreated(): number {
  return created;
}

export class DecoderSession {
  private constructor(
    readonly manifest: ModelManifest,
    readonly spec: ModelSpec,
    private readonly session: ort.InferenceSession,
    /** Present on the WebGPU EP: where LoRA factors are moved before a step reads them. */
    private readonly gpuFeeds: GpuFeeds | null,
    /** Present on the WebGPU EP: how caches come back to the host when a batch changes. */
    private readonly downloader: GpuDownloader | null,
  ) {}

  /** Zero-length past caches, one per batch size seen; they are immutable, so runs share them. */
  private readonly emptyPast: KvCache[] = [];

  static async load(
    dir: string,
    options: DecoderSessionOptions = {},
  ): Promise<Result<DecoderSession, ModelArtifactsError>> {
    const read = await readModelManifest(dir);
    if (!read.ok) return read;
    const { manifest, spec } = read.value;
    // Every decode step's present is the next step's past: on a GPU, leave it there. Without
    // this, each step copied the whole cache to the host and back (docs/benchmarks.md).
    const onGpu = (options.executionProviders ?? ["cpu"])[0] === "webgpu";
    const presents = Array.from({ length: manifest.dims.numLayers }, (_, l) => [
      IO.presentKey(l),
      IO.presentValue(l),
    ]).flat();
    const session = await createSession(
      join(dir, manifest.files.model),
      options,
      onGpu ? { preferredOutputLocation: Object.fromEntries(presents.map((n) => [n, "gpu-buffer"])) } : {},
    );
    created++;
    const factors = session.inputNames.filter((n) => n.startsWith("base_model."));
    const gpuFeeds = onGpu && factors.length > 0 ? await GpuFeeds.create(factors) : null;
    if (gpuFeeds !== null) created++;
    const downloader = onGpu ? await GpuDownloader.create(presents.length) : null;
    if (downloader !== null) created++;
    return ok(new DecoderSession(manifest, spec, session, gpuFeeds, downloader));
  }

  private empty(batch: number): KvCache {
    const found = this.emptyPast.find((c) => c.batch === batch);
    if (found !== undefined) return found;
    const { numLayers, numKvHeads, headDim } = this.manifest.dims;
    const make = () => new ort.Tensor("float32", new Float32Array(0), [batch, numKvHeads, 0, headDim]);
    const cache: KvCache = {
      batch,
      length: 0,
      keys: Array.from({ length: numLayers }, make),
      values: Array.from({ length: numLayers }, make),
    };
    this.emptyPast.push(cache);
    return cache;
  }

  /** One forward pass over `seq` new tokens per row. */
  async step(input: StepInput, lora: LoraFeeds): Promise<StepOutput> {
    const { batch, seq } = input;
    const past = input.past ?? this.empty(batch);
    const total = past.length + seq;
    const feeds: Record<string, ort.Tensor> = {
      ...(this.gpuFeeds === null ? lora : await this.gpuFeeds.place(lora)),
      [IO.inputIds]: new ort.Tensor("int64", input.inputIds, [batch, seq]),
      [IO.attentionMask]: new ort.Tensor("int64", input.attentionMask, [batch, total]),
      [IO.positionIds]: new ort.Tensor("int64", input.positionIds, [batch, seq]),
      [IO.logitsPositions]: new ort.Tensor("int64", input.logitsPositions, [batch, input.logitsCount]),
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
    return {
      logits: pick(IO.logits).data as Float32Array,
      present: {
        batch,
        length: total,
        keys: Array.from({ length: layers }, (_, l) => pick(IO.presentKey(l))),
        values: Array.from({ length: layers }, (_, l) => pick(IO.presentValue(l))),
      },
    };
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

  async release(): Promise<void> {
    await this.session.release();
    await this.gpuFeeds?.release();
    await this.downloader?.release();
  }
}
