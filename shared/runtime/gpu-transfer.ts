/**
 * LoRA factors kept in GPU memory. onnxruntime-node copies every host input to the GPU on every
 * run, one synchronous transfer per tensor: with an adapter on all seven projections of a 24-layer
 * model that was 336 uploads per decode step, about 1 ms each on an H100 whatever their size.
 * The only way to hold a tensor on the GPU from Node is as a session output with location
 * "gpu-buffer", so a second, trivial session (one Identity per factor) uploads an adapter's
 * factors once, on the first step that uses them, and the decoder reads them from there.
 *
 * Placed factors live as long as the host feeds they were made from: they are found through a
 * WeakMap keyed by that object and freed by a FinalizationRegistry once it is collected. A
 * generator collects right after an eviction, so an evicted version's GPU memory goes with it.
 */
import * as ort from "onnxruntime-node";
import { encodeModel, GraphBuilder } from "../onnx/index.ts";
import type { LoraFeeds } from "./lora-feeds.ts";

const ON_GPU = (name: string) => `gpu/${name}`;

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
    const g = new GraphBuilder("upload");
    for (const name of names) {
      g.input(name, "float32", [`${name}.rows`, `${name}.cols`]);
      g.op("Identity", [name], {}, { names: [ON_GPU(name)] });
      g.output(ON_GPU(name), "float32", [`${name}.rows`, `${name}.cols`]);
    }
    const model = encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "loracast" });
    const uploader = await ort.InferenceSession.create(model, {
      executionProviders: ["webgpu"],
      preferredOutputLocation: "gpu-buffer",
    });
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

  /** A downloader for `count` float32 tensors of rank 4 (a KV cache's keys and values). */
  static async create(count: number): Promise<GpuDownloader> {
    const g = new GraphBuilder("download");
    for (let i = 0; i < count; i++) {
      const dims = [0, 1, 2, 3].map((a) => `t${i}.${a}`);
      g.input(`t${i}`, "float32", dims);
      g.op("Identity", [`t${i}`], {}, { names: [`host${i}`] });
      g.output(`host${i}`, "float32", dims);
    }
    const model = encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "loracast" });
    const session = await ort.InferenceSession.create(model, { executionProviders: ["webgpu"] });
    return new GpuDownloader(session, count);
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
