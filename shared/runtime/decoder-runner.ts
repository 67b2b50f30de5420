/**
 * What `DecoderSession` runs a step on: onnxruntime-node's `InferenceSession` (`StockRunner`, with
 * the WebGPU EP's device transfers) or the ort-native addon (`NativeDecoder`, native-decoder.ts).
 * The session builds the step's feeds and reads the outputs the same way on both.
 */
import type * as ort from "onnxruntime-node";
import { IO } from "../model-format/index.ts";
import { DeviceTensor } from "../ort-native/index.ts";
import type { KvPlacement } from "./device-copies.ts";
import type { GpuDownloader, GpuFeeds } from "./gpu-transfer.ts";
import type { KvTensor } from "./kv-cache.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import type { ResidentCounts } from "./resident-feeds.ts";

/** A step's feeds other than the LoRA factors: host tensors, or device tensors of the same runner. */
export type StepFeeds = Record<string, KvTensor>;

/** One step's results: the logits on the host, and the other outputs fetched, by name. */
export interface RunnerOutput {
  /** float32 `[batch, logitsCount, vocab]` */
  logits: Float32Array;
  outputs: Readonly<Record<string, KvTensor>>;
}

/** A decoder graph's session, as `DecoderSession` drives it. */
export interface Runner {
  /** Where the presents it returns live (and so the KV cache). */
  readonly kv: KvPlacement;
  /** Whether LoRA factors are uploaded once per adapter rather than copied in every step. */
  readonly factorsResident: boolean;
  /** Steps this runner has run (each `run` that returned): which graph served what, for tests and /metrics. */
  readonly steps: number;
  /** One step: `feeds`, plus the factors of `lora` (packed feeds). Throws ORT's errors. */
  run(feeds: StepFeeds, lora: LoraFeeds): Promise<RunnerOutput>;
  /** Host copies of `tensors`, in order (host ones as they are); the device originals are left. */
  toHost(tensors: readonly KvTensor[]): Promise<KvTensor[]>;
  /** Adapters uploaded and freed so far; null where factors are fed from the host. */
  residentStats(): ResidentCounts | null;
  /** Ends ORT's profiler and writes its file (a no-op where it is off). */
  endProfiling(): void;
  release(): Promise<void>;
}

/** `t` when it is an onnxruntime-node tensor; a TypeError for an ort-native one. */
function stockTensor(name: string, t: KvTensor): ort.Tensor {
  if (t instanceof DeviceTensor) throw new TypeError(`${name}: an ort-native tensor fed to onnxruntime-node`);
  return t;
}

/**
 * onnxruntime-node's session, with the WebGPU EP's factor uploader and cache downloader where the
 * cache stays on the device (`gpu-transfer.ts`); both null on the CPU and CUDA EPs. The downloader
 * may be shared with another runner of the same session: `ownsDownloader` says which one releases it.
 */
export class StockRunner implements Runner {
  readonly kv: KvPlacement;
  readonly factorsResident: boolean;
  private ran = 0;

  get steps(): number {
    return this.ran;
  }

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly gpuFeeds: GpuFeeds | null,
    private readonly downloader: GpuDownloader | null,
    private readonly ownsDownloader = true,
  ) {
    this.kv = downloader === null ? "host" : "device";
    this.factorsResident = gpuFeeds !== null;
  }

  async run(feeds: StepFeeds, lora: LoraFeeds): Promise<RunnerOutput> {
    const inputs: Record<string, ort.Tensor> = {
      ...(this.gpuFeeds === null ? lora : await this.gpuFeeds.place(lora)),
    };
    for (const [name, t] of Object.entries(feeds)) inputs[name] = stockTensor(name, t);
    const outputs = await this.session.run(inputs);
    this.ran++;
    const logits = outputs[IO.logits];
    if (logits === undefined) throw new Error(`session output ${IO.logits} missing`);
    return { logits: logits.data as Float32Array, outputs };
  }

  async toHost(tensors: readonly KvTensor[]): Promise<KvTensor[]> {
    const all = tensors.map((t, i) => stockTensor(`cache tensor ${i}`, t));
    if (this.downloader === null || all.every((t) => t.location === "cpu")) return all;
    return this.downloader.toHost(all);
  }

  residentStats(): ResidentCounts | null {
    return this.gpuFeeds?.stats() ?? null;
  }

  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.gpuFeeds?.release();
    if (this.ownsDownloader) await this.downloader?.release();
  }
}
