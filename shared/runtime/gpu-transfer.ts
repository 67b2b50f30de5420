/**
 * Moving tensors between host and GPU memory on the WebGPU EP, around what onnxruntime-node allows.
 * It copies every host input to the GPU on every run, one synchronous transfer per tensor (about
 * 1 ms each on an H100 whatever the size), and the only GPU-resident tensors it gives JS are session
 * outputs with location "gpu-buffer". So both directions are small Identity sessions, created once.
 */
import * as ort from "onnxruntime-node";
import type { KvCacheDtype } from "../model-format/index.ts";
import { encodeModel, GraphBuilder } from "../onnx/index.ts";
import type { LoraFeeds } from "./lora-feeds.ts";

const ON_GPU = (name: string) => `gpu/${name}`;

/** A session that copies each input to an output: `pairs` are [input, output, symbolic dims]. */
function identitySession(
  pairs: readonly [string, string, readonly string[]][],
  options: ort.InferenceSession.SessionOptions,
  type: "float32" | "float16",
): Promise<ort.InferenceSession> {
  const g = new GraphBuilder("identity");
  for (const [input, output, dims] of pairs) {
    g.input(input, type, dims);
    g.op("Identity", [input], {}, { names: [output] });
    g.output(output, type, dims);
  }
  const model = encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "loracast" });
  return ort.InferenceSession.create(model, { executionProviders: ["webgpu"], ...options });
}

/**
 * LoRA factors kept in GPU memory: with an adapter on all seven projections of a 24-layer model,
 * feeding them from the host was 336 uploads per decode step. They are uploaded once, on the first
 * step that uses them, and the decoder reads them from there.
 *
 * Placed factors live as long as the host feeds they were made from: they are found through a
 * WeakMap keyed by that object and freed by a FinalizationRegistry once it is collected. A
 * generator collects right after an eviction, so an evicted version's GPU memory goes with it.
 */
export class GpuFeeds {
  private readonly placed = new WeakMap<LoraFeeds, LoraFeeds>();
  private readonly pending = new WeakMap<LoraFeeds, Promise<LoraFeeds>>();
  private readonly frees = new FinalizationRegistry<ort.Tensor[]>((tensors) => {
    for (const t of tensors) t.dispose();
  });

  private constructor(
    private readonly uploader: ort.InferenceSession,
    private readonly names: readonly string[],
  ) {}

  /** An uploader for the float32 inputs `names` (the decoder's LoRA factors). */
  static async create(names: readonly string[]): Promise<GpuFeeds> {
    const uploader = await identitySession(
      names.map((n) => [n, ON_GPU(n), [`${n}.rows`, `${n}.cols`]]),
      { preferredOutputLocation: "gpu-buffer" },
      "float32",
    );
    return new GpuFeeds(uploader, names);
  }

  /** The same feeds with every factor in GPU memory; uploads once per feeds object. */
  place(feeds: LoraFeeds): Promise<LoraFeeds> {
    const done = this.placed.get(feeds);
    if (done !== undefined) return Promise.resolve(done);
    const running = this.pending.get(feeds);
    if (running !== undefined) return running;
    const p = this.upload(feeds).finally(() => this.pending.delete(feeds));
    this.pending.set(feeds, p);
    return p;
  }

  private async upload(feeds: LoraFeeds): Promise<LoraFeeds> {
    const inputs: Record<string, ort.Tensor> = {};
    for (const name of this.names) {
      const t = feeds[name];
      if (t === undefined) throw new Error(`LoRA feed ${name} missing`);
      inputs[name] = t;
    }
    const out = await this.uploader.run(inputs);
    const placed: Record<string, ort.Tensor> = { ...feeds };
    for (const name of this.names) {
      const t = out[ON_GPU(name)];
      if (t === undefined) throw new Error(`uploader output for ${name} missing`);
      placed[name] = t;
    }
    this.placed.set(feeds, placed);
    this.frees.register(
      feeds,
      this.names.map((n) => placed[n] as ort.Tensor),
    );
    return placed;
  }

  async release(): Promise<void> {
    await this.uploader.release();
  }
}

/**
 * Copies tensors from GPU memory to the host through an Identity session with host outputs.
 * `Tensor.getData()` on a gpu-buffer tensor that onnxruntime-node returned aborts the process
 * (`terminate called after throwing an instance of 'char const*'`, H100, ORT 1.30); a session
 * reading it as an input does not.
 */
export class GpuDownloader {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly count: number,
  ) {}

  /** A downloader for `count` tensors of rank 4 and element type `type` (a KV cache's keys and values). */
  static async create(count: number, type: KvCacheDtype): Promise<GpuDownloader> {
    const pairs = Array.from({ length: count }, (_, i): [string, string, string[]] => [
      `t${i}`,
      `host${i}`,
      [0, 1, 2, 3].map((a) => `t${i}.${a}`),
    ]);
    return new GpuDownloader(await identitySession(pairs, {}, type), count);
  }

  /** Host copies of `tensors`, in order; the GPU originals are left to the caller. */
  async toHost(tensors: readonly ort.Tensor[]): Promise<ort.Tensor[]> {
    if (tensors.length !== this.count) throw new RangeError(`expected ${this.count} tensors`);
    const out = await this.session.run(Object.fromEntries(tensors.map((t, i) => [`t${i}`, t])));
    return tensors.map((_, i) => {
      const t = out[`host${i}`];
      if (t === undefined) throw new Error(`downloader output ${i} missing`);
      return t;
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
