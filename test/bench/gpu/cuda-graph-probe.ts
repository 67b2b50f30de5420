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
 * The steps decode: step i feeds a new token per row and `seqlens_k` = past + i, written into the
 * bound device buffers before the run, so a replay must follow the cache's growth through its device
 * inputs alone (the host's `total_sequence_length` is the capture's). Each step ends with the
 * logits' download, the engine's synchronisation point, and a replay's logits are checked against
 * the plain runs' of the same graph and step (largest difference over each row's first
 * `CHECKED` logits, and each row's greedy token over the whole vocabulary). Prints ms per step
 * (median, p10, p90) per variant and the LoRA overhead per way; a variant that cannot run prints
 * ORT's reason and the others still run.
 *
 * `--also=DIR` times a second build of the same checkpoint too (another `decoder.loraOp`, e.g. the
 * fused `shrink-expand`): its LoRA graph runs beside the first, with the same factors, and its plain
 * runs' logits are compared with the first LoRA graph's.
 *
 * node cuda-graph-probe.mjs --model=DIR --addon=FILE [--also=DIR] [--steps=64] [--past=128] [--batch=1]
 */
import { IO, readModelManifest } from "@loracast/shared/model-format";
import { type DeviceTensor, type HostTensor, loadOrtNative } from "@loracast/shared/ort-native";
import { parseCommandLine } from "@loracast/shared/platform";
import { percentile } from "../percentile.ts";
import { ADDON_FLAG, probeFlags, say } from "./flags.ts";
import { randomPackedFactors } from "./random-factors.ts";

const cli = {
  usage: "node cuda-graph-probe.mjs --model=DIR --addon=FILE [flags]",
  about:
    "CUDA graphs on the GroupQueryAttention float16 decoder: ms per decode step of its base and LoRA graphs, plain runs against CUDA graph replay, on the ort-native addon.",
  flags: {
    model: {
      type: "string",
      default: "/tmp/bench-work/qwen25-05b-int4-acc4-gqa16",
      help: "the GQA float16 build (bench:engine --attention=both --kv-cache-dtype=float16)",
    },
    addon: ADDON_FLAG,
    steps: { type: "string", default: "64", help: "timed decode steps, 1 to 1024" },
    past: { type: "string", default: "128", help: "the KV cache's length before the first step, 1 to 4096" },
    batch: { type: "string", default: "1", help: "rows per step, 1 to 64" },
    also: { type: "string", help: "a second build of the same checkpoint (DIR), timed beside the first" },
  },
} as const;
const { values } = parseCommandLine(cli);
const flags = probeFlags(cli, values);
const steps = flags.int("steps", 1, 1024);
const past = flags.int("past", 1, 4096);
const batch = flags.int("batch", 1, 64);
const WARMUP = 4;
/** Logits per row that the replay check compares (the greedy token covers the rest). */
const CHECKED = 4096;

const read = await readModelManifest(values.model);
if (!read.ok) {
  say(`cuda-graph probe: no model in ${values.model}: ${read.error.message}`);
  process.exit(3);
}
const { manifest, spec } = read.value;
const also = values.also === undefined ? null : await readModelManifest(values.also);
if (
  also !== null &&
  (!also.ok || JSON.stringify(also.value.manifest.dims) !== JSON.stringify(manifest.dims))
) {
  say(
    `cuda-graph probe: --also=${values.also} is not a build of the same model: ${also.ok ? "other dims" : also.error.message}`,
  );
  process.exit(3);
}
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
// Room for every step's new key: the static cache is wider than the past it starts from.
const capacity = past + WARMUP + steps + 1;

/** What a step's logits are checked by: each row's first `CHECKED` logits and its greedy token. */
interface StepLogits {
  head: Float32Array;
  greedy: number[];
}

function summarize(logits: Float32Array): StepLogits {
  const head = new Float32Array(batch * CHECKED);
  const greedy: number[] = [];
  for (let b = 0; b < batch; b++) {
    const row = logits.subarray(b * vocabSize, (b + 1) * vocabSize);
    head.set(row.subarray(0, CHECKED), b * CHECKED);
    let best = 0;
    for (let v = 1; v < vocabSize; v++) if ((row[v] ?? 0) > (row[best] ?? 0)) best = v;
    greedy.push(best);
  }
  return { head, greedy };
}

/**
 * Per-step ms of `WARMUP + steps` decode steps of `graph` (factors fed when `lora`), the last
 * `steps`, and every step's logits summary.
 */
async function time(
  path: string,
  lora: boolean,
  cudaGraph: boolean,
): Promise<{ ms: number[]; logits: StepLogits[] }> {
  const session = native.createSession(path, {
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
    };
    const inputIds = feeds[IO.inputIds] as DeviceTensor;
    const seqlensK = feeds[IO.seqlensK] as DeviceTensor;
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
    const seen: StepLogits[] = [];
    for (let i = 0; i < WARMUP + steps; i++) {
      const t0 = performance.now();
      inputIds.upload(
        BigInt64Array.from({ length: batch }, (_, b) => BigInt((1 + 7 * i + 131 * b) % vocabSize)),
      );
      seqlensK.upload(new Int32Array(batch).fill(past + i));
      feeds[IO.totalSequenceLength] = { type: "int32", dims: [], data: Int32Array.of(past + i + 1) };
      await session.run(feeds, outputs, cudaGraph ? { graphId: 1 } : {});
      const host = logits.download();
      if (i >= WARMUP) ms.push(performance.now() - t0);
      seen.push(summarize(host.data as Float32Array));
    }
    return { ms, logits: seen };
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
/** The plain runs' logits per graph, what the replays are checked against. */
const plainLogits: Record<string, StepLogits[]> = {};
const checks: string[] = [];

/** The largest logit difference and the greedy tokens that differ, replay against plain runs. */
function check(label: string, plain: StepLogits[], replay: StepLogits[]): string {
  let worst = 0;
  let tokens = 0;
  replay.forEach((r, i) => {
    const p = plain[i];
    if (p === undefined) return;
    for (let j = 0; j < r.head.length; j++)
      worst = Math.max(worst, Math.abs((r.head[j] ?? 0) - (p.head[j] ?? 0)));
    tokens += r.greedy.filter((t, b) => t !== p.greedy[b]).length;
  });
  return `${label}: over ${replay.length} steps: max |logit diff| ${worst.toExponential(2)}, greedy tokens differing ${tokens} of ${replay.length * batch}`;
}
say("| variant | ms / step p50 | p10 | p90 | tok/s |\n|---|---|---|---|---|");
const loraOp = (m: typeof manifest) => m.decoder.loraOp ?? "gemm";
const graphs: [string, string, boolean][] = [
  ["base graph", `${values.model}/${base}`, false],
  [`LoRA graph, r=16, ${loraOp(manifest)}`, `${values.model}/${manifest.files.model}`, true],
];
if (also?.ok) {
  const m = also.value.manifest;
  graphs.push([`LoRA graph, r=16, ${loraOp(m)}`, `${values.also}/${m.files.model}`, true]);
}
for (const cudaGraph of [false, true])
  for (const [name, graph, lora] of graphs) {
    const label = `${name}, ${cudaGraph ? "CUDA graph replay" : "plain runs"}`;
    try {
      const run = await time(graph, lora, cudaGraph);
      const s = median(run.ms);
      if (!cudaGraph) plainLogits[name] = run.logits;
      else {
        const plain = plainLogits[name];
        if (plain !== undefined) checks.push(check(`${name}: replay vs plain runs`, plain, run.logits));
      }
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
for (const way of ["plain runs", "CUDA graph replay"])
  for (const [name, , lora] of graphs) {
    const [b, l] = [p50[`base graph, ${way}`], p50[`${name}, ${way}`]];
    if (lora && b !== undefined && l !== undefined)
      say(`LoRA overhead, ${name}, ${way}: ${((100 * (l - b)) / b).toFixed(1)}%`);
  }
const [, first, second] = graphs.map(([name]) => plainLogits[name]);
if (first !== undefined && second !== undefined)
  checks.push(check(`${graphs[2]?.[0]} against ${graphs[1]?.[0]}, plain runs`, first, second));
for (const line of checks) say(line);
