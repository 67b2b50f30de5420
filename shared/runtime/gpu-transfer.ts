/**
 * Moving tensors between host and GPU memory on the WebGPU EP, around what onnxruntime-node allows.
 * It copies every host input to the GPU on every run, one synchronous transfer per tensor (about
 * 1 ms each on an H100 whatever the size), and the only GPU-resident tensors it gives JS are session
 * outputs with location "gpu-buffer". So both directions are small Identity sessions, created once.
 */
import type * as ort from "onnxruntime-node";
import type { KvCacheDtype } from "../model-format/index.ts";
import { encodeModel, GraphBuilder } from "../onnx/index.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import { type ResidentCounts, ResidentFeeds } from "./resident-feeds.ts";
import { createSession } from "./session-options.ts";

const ON_GPU = (name: string) => `gpu/${name}`;

/** A session that copies each input to an output: `pairs` are [input, output, symbolic dims]. */
function identitySession(
  pairs: readonly [string, string, readonly string[]][],
  overrides: Pick<ort.InferenceSession.SessionOptions, "preferredOutputLocation">,
  type: "float32" | "float16",
): Promise<ort.InferenceSession> {
  const g = new GraphBuilder("identity");
  for (const [input, output, dims] of pairs) {
    g.input(input, type, dims);
    g.op("Identity", [input], {}, { names: [output] });
    g.output(output, type, dims);
  }
  const model = encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "loracast" });
  // The first WebGPU session of a decoder is this one: a host without an adapter fails here, and
  // createSession maps that to ExecutionProviderError as for every other session.
  return createSession(model, { executionProviders: ["webgpu"] }, overrides);
}

/**
 * LoRA factors kept in GPU memory on the WebGPU EP, uploaded once per adapter through an Identity
 * session with gpu-buffer outputs, and freed with the host feeds they came from (`ResidentFeeds`).
 */
export class GpuFeeds {
  private readonly resident: ResidentFeeds<LoraFeeds>;

  private constructor(
    private readonly uploader: ort.InferenceSession,
    private readonly names: readonly string[],
  ) {
    this.resident = new ResidentFeeds(
      (feeds) => this.upload(feeds),
      (placed) => {
        for (const n of this.names) placed[n]?.dispose();
      },
    );
  }

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
    return this.resident.place(feeds);
  }

  /** Adapters uploaded and freed so far. */
  stats(): ResidentCounts {
    return this.resident.stats();
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
