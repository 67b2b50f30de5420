/**
 * What CUDA graphs are worth to the decoder, and to its LoRA overhead (issue 18), for the lead's
 * device call: decode steps of the engine bench's GroupQueryAttention model over a float16 KV cache
 * (`bench:engine --attention=both --kv-cache-dtype=float16` builds it), the LoRA graph with r=16
 * factors on all seven projections and the base graph, each run two ways on the ort-native addon
 * (TF32 off, factors resident):
 *  - plain: ORT dispatches every node on every step;
 *  - graph: a session with `enable_cuda_graph`; every input and output bound to a device tensor of
 *    fixed address (past and present share one buffer, GroupQueryAttention's static KV cache) except
 *    `total_sequence_length`, which its CUDA kernel reads on the host; the first run captures, the
 *    others replay (`gpu_graph_id`).
 * Every step feeds the same past length, since a replay repeats its capture's shapes and host
 * values: this times a step, it does not decode. Each step ends with the logits' download, the
 * engine's synchronisation point. Prints ms per step (median, p10, p90) per variant and the LoRA
 * overhead per way; a variant that cannot run prints ORT's reason and the others still run.
 *
 * node cuda-graph-probe.mjs --model=DIR --addon=FILE [--steps=64] [--past=128] [--batch=1]
 */
import { parseArgs } from "node:util";
import { IO, readModelManifest } from "@loracast/shared/model-format";
import { type DeviceTensor, type HostTensor, loadOrtNative } from "@loracast/shared/ort-native";
import { percentile } from "../percentile.ts";
import { randomPackedFactors } from "./random-factors.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "/tmp/bench-work/qwen25-05b-int4-acc4-gqa16" },
    addon: { type: "string", default: ".carry/cuda/ort-native.node" },
    steps: { type: "string", default: "64" },
    past: { type: "string", default: "128" },
    batch: { type: "string", default: "1" },
  },
});
const say = (s: string) => process.stdout.write(`${s}\n`);
const steps = Math.min(1024, Math.max(1, Number(values.steps) || 64));
const past = Math.min(4096, Math.max(1, Number(values.past) || 128));
const batch = Math.min(64, Math.max(1, Number(values.batch) || 1));
const WARMUP = 4;

const read = await readModelManifest(values.model);
if (!read.ok) {
  say(`cuda-graph probe: no model in ${values.model}: ${read.error.message}`);
  process.exit(3);
}
const { manifest, spec } = read.value;
const base = manifest.files.base;
if (
  manifest.decoder.attention !== "gqa" ||
  manifest.decoder.kvCacheDtype !== "float16" ||
  base === undefined
) {
  say(`cuda-graph probe: ${values.model} is not a GroupQueryAttention float16 build with a base graph`);
  process.exit(3);
}
const addon = loadOrtNative(values.addon);
if (!addon.ok) {
  say(`cuda-graph probe: the addon did not load (${addon.error.reason}): ${addon.error.message}`);
  process.exit(3);
}
const native = addon.value;
const { numLayers, numKvHeads, headDim, vocabSize } = manifest.dims;
const factors = randomPackedFactors(spec, manifest, 16);
// Room for the step's new keys: the static cache is wider than the past it holds.
const capacity = past + 8;

/** Per-step ms of `WARMUP + steps` steps of `graph` (factors fed when `lora`), the last `steps`. */
async function time(graph: string, lora: boolean, cudaGraph: boolean): Promise<number[]> {
  const session = native.createSession(`${values.model}/${graph}`, {
    ep: "cuda",
    useTf32: false,
    enableCudaGraph: cudaGraph,
    dedicatedThread: true,
  });
  const owned: DeviceTensor[] = [];
  const device = (t: HostTensor) => {
    const d = session.upload(t);
    owned.push(d);
    return d;
  };
  try {
    const feeds: Record<string, DeviceTensor | HostTensor> = {
      [IO.inputIds]: device({
        type: "int64",
        dims: [batch, 1],
        data: BigInt64Array.from({ length: batch }, (_, b) => BigInt(1 + b)),
      }),
      [IO.logitsPositions]: device({ type: "int64", dims: [batch, 1], data: new BigInt64Array(batch) }),
      [IO.seqlensK]: device({ type: "int32", dims: [batch], data: new Int32Array(batch).fill(past) }),
      [IO.totalSequenceLength]: { type: "int32", dims: [], data: Int32Array.of(past + 1) },
    };
    if (lora) for (const [name, f] of Object.entries(factors)) feeds[name] = device(f);
    const outputs: Record<string, DeviceTensor> = {};
    const zeros = new Uint16Array(batch * numKvHeads * capacity * headDim);
    for (let l = 0; l < numLayers; l++)
      for (const [pastName, presentName] of [
        [IO.pastKey(l), IO.presentKey(l)],
        [IO.pastValue(l), IO.presentValue(l)],
      ] as const) {
        const cache = device({ type: "float16", dims: [batch, numKvHeads, capacity, headDim], data: zeros });
        feeds[pastName] = cache;
        outputs[presentName] = cache;
      }
    const logits = session.allocate("float32", [batch, 1, vocabSize]);
    owned.push(logits);
    outputs[IO.logits] = logits;
    const ms: number[] = [];
    for (let i = 0; i < WARMUP + steps; i++) {
      const t0 = performance.now();
      await session.run(feeds, outputs, cudaGraph ? { graphId: 1 } : {});
      logits.download();
      if (i >= WARMUP) ms.push(performance.now() - t0);
    }
    return ms;
  } finally {
    for (const t of owned) t.release();
    session.release();
  }
}

/** Nearest-rank p50, p10 and p90 of a variant's step times, ms. */
const median = (ms: number[]) => ({
  p50: percentile(ms, 50),
  p10: percentile(ms, 10),
  p90: percentile(ms, 90),
});
say(
  `cuda-graph probe: ${values.model}; batch ${batch}, past ${past} (cache ${capacity} columns), ${steps} timed steps after ${WARMUP}; LoRA r=16 on ${spec.modules.size} modules`,
);
const p50: Record<string, number> = {};
say("| variant | ms / step p50 | p10 | p90 | tok/s |\n|---|---|---|---|---|");
for (const cudaGraph of [false, true])
  for (const [name, graph, lora] of [
    ["base graph", base, false],
    ["LoRA graph, r=16", manifest.files.model, true],
  ] as const) {
    const label = `${name}, ${cudaGraph ? "CUDA graph replay" : "plain runs"}`;
    try {
      const s = median(await time(graph, lora, cudaGraph));
      p50[label] = s.p50;
      say(
        `| ${label} | ${s.p50.toFixed(2)} | ${s.p10.toFixed(2)} | ${s.p90.toFixed(2)} | ${((1000 * batch) / s.p50).toFixed(1)} |`,
      );
    } catch (e) {
      say(
        `| ${label} | could not run: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]} | | | |`,
      );
    }
  }
for (const way of ["plain runs", "CUDA graph replay"]) {
  const [b, l] = [p50[`base graph, ${way}`], p50[`LoRA graph, r=16, ${way}`]];
  if (b !== undefined && l !== undefined) say(`LoRA overhead, ${way}: ${((100 * (l - b)) / b).toFixed(1)}%`);
}
