/**
 * What device-resident LoRA factors are worth (issue 18, item 6), for the lead's device call B:
 * N batch-1 decode steps of the engine bench's int4 model (the append graph, host KV cache, LoRA
 * r=16 on all seven projections, seeded random factors), timed three ways in one process:
 *  (a) onnxruntime-node, every factor a host input on every step (what the engine does today);
 *  (b) the `ort-native` addon, factors uploaded once into device tensors and bound (I/O binding),
 *      everything else as in (a): host ids, mask, positions and KV cache in, logits and the
 *      appended keys and values out to the host; ORT's default TF32 (on), like (a);
 *  (c) (b) with the CUDA provider option `use_tf32=0`.
 * Same loop, same feeds, same host-cache writes for all three; each variant first runs a prefill
 * and 4 warm-up steps. Prints ms per decode step (median, p10, p90), the difference to (a), the
 * largest logit difference to (a), and the event loop's largest delay during the timed steps
 * (onnxruntime-node runs on the JS thread; the addon's runs on a libuv worker). After (b), one run
 * fetches the logits and the first layer's appended keys as `"device"` outputs and checks that
 * they download equal to the host outputs of the same run. (d): the full graph as the engine's
 * ort-native decoder runs it (presents left on the device, fed back as the next past; TF32 off).
 * `--rank=0` feeds empty factors, as a base request does. Fail-soft: a variant that cannot run
 * prints why and the others still run; exit 0 when (a) ran.
 *
 * node ort-native-probe.mjs --model=DIR --addon=FILE [--ep=cuda] [--steps=64] [--prompt=16] [--rank=16|0]
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { IO, readModelManifest } from "@loracast/shared/model-format";
import {
  type DeviceTensor,
  type HostTensor,
  loadOrtNative,
  type NativeSession,
} from "@loracast/shared/ort-native";
import { parseCommandLine } from "@loracast/shared/platform";
import { createSession } from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";
import { percentile } from "../percentile.ts";
import { ADDON_FLAG, probeFlags, say } from "./flags.ts";
import { randomPackedFactors } from "./random-factors.ts";

const cli = {
  usage: "node ort-native-probe.mjs --model=DIR --addon=FILE [flags]",
  about:
    "Device-resident LoRA factors: ms per batch-1 decode step of the int4 append graph on onnxruntime-node (factors as host inputs) and on the ort-native addon (factors uploaded once), TF32 on and off, and the full graph with its presents left on the device.",
  flags: {
    model: {
      type: "string",
      default: "/tmp/bench-work/qwen25-05b-int4-acc4",
      help: "the int4 build with an append graph (bench:engine's)",
    },
    addon: ADDON_FLAG,
    ep: { type: "string", default: "cuda", help: "execution provider: cuda, or cpu (a dry run off the GPU)" },
    steps: { type: "string", default: "64", help: "timed decode steps, 1 to 512" },
    prompt: { type: "string", default: "16", help: "the prefill's tokens, 1 to 256" },
    rank: {
      type: "string",
      default: "16",
      help: "LoRA rank per module: 16, or 0 (a base request's empty factors)",
    },
  },
} as const;
const { values } = parseCommandLine(cli);
const flags = probeFlags(cli, values);
const ep = flags.oneOf("ep", ["cuda", "cpu"]);
const steps = flags.int("steps", 1, 512);
const promptLen = flags.int("prompt", 1, 256);
const WARMUP = 4;
// Rank 0 is what a base request feeds the LoRA graph (`baseFeeds`): the nodes run with empty factors.
const RANK = Number(flags.oneOf("rank", ["16", "0"]));

const read = await readModelManifest(values.model);
if (!read.ok) {
  say(`ort-native probe: no model in ${values.model}: ${read.error.message}`);
  process.exit(3);
}
const { manifest, spec } = read.value;
if (manifest.files.append === undefined) {
  say(`ort-native probe: ${values.model} has no append graph`);
  process.exit(3);
}
// Variant (a) is onnxruntime-node, which does not know the addon's LoraShrinkExpand: such a model
// would leave the comparison column empty, so it is refused here.
if (manifest.decoder.loraOp === "shrink-expand") {
  process.stderr.write(
    `error: ${values.model} was built with --lora-op shrink-expand, which the stock binding (variant (a)) cannot run; build it with --lora-op gemm for this probe\n`,
  );
  process.exit(2);
}
const graph = `${values.model}/${manifest.files.append}`;
const { numLayers, numKvHeads, headDim, vocabSize } = manifest.dims;

// LoRA r=16 on every module (rank 0: a base request's empty factors), seeded, packed as the
// generator packs them once per adapter version.
const factors = randomPackedFactors(spec, manifest, RANK);
const factorBytes = Object.values(factors).reduce((n, t) => n + t.data.byteLength, 0);

/** One step's feeds and outputs, by name; host tensors in, host tensors out. */
type RunStep = (feeds: Record<string, HostTensor>) => Promise<Record<string, HostTensor>>;

interface Timing {
  ms: number[];
  firstLogits: Float32Array;
  /** The event loop's largest delay during the timed steps, ms (1 ms resolution). */
  loopDelayMs: number;
}

/**
 * The step loop every variant shares: a prefill of `promptLen` tokens, then `WARMUP + steps` greedy
 * decode steps of one row; times the last `steps`. `prepare` gets a step's new tokens and the
 * row's cached length and builds its feeds (untimed); the run it returns is timed, cache upkeep
 * included, and resolves to the logits.
 */
async function timeSteps(
  prepare: (ids: BigInt64Array, length: number) => () => Promise<Float32Array>,
): Promise<Timing> {
  let length = 0;
  let token = 1n;
  const ms: number[] = [];
  let firstLogits = new Float32Array(0);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  for (let i = 0; i < 1 + WARMUP + steps; i++) {
    const ids =
      i === 0
        ? BigInt64Array.from({ length: promptLen }, (_, j) => BigInt((1 + j * 7919) % vocabSize))
        : BigInt64Array.of(token);
    const run = prepare(ids, length);
    if (i === WARMUP + 1) loop.enable();
    const t0 = performance.now();
    const logits = await run();
    if (i > WARMUP) ms.push(performance.now() - t0);
    if (i === 1) firstLogits = logits.slice();
    length += ids.length;
    let best = 0;
    for (let v = 1; v < vocabSize; v++) if ((logits[v] ?? 0) > (logits[best] ?? 0)) best = v;
    token = BigInt(best);
  }
  loop.disable();
  return { ms, firstLogits, loopDelayMs: loop.max / 1e6 };
}

/** A step's ids, positions (after `length` cached tokens) and last-token logits position. */
function tokenFeeds(ids: BigInt64Array, length: number): Record<string, HostTensor> {
  const seq = ids.length;
  return {
    [IO.inputIds]: { type: "int64", dims: [1, seq], data: ids },
    [IO.positionIds]: {
      type: "int64",
      dims: [1, seq],
      data: BigInt64Array.from({ length: seq }, (_, j) => BigInt(length + j)),
    },
    [IO.logitsPositions]: { type: "int64", dims: [1, 1], data: BigInt64Array.from([BigInt(seq - 1)]) },
  };
}

/**
 * `timeSteps` over a host cache of fixed capacity (spare columns masked out, as DecoderSession's
 * append path does): the append graph's new keys and values are written into it after each run.
 */
function decode(run: RunStep): Promise<Timing> {
  const capacity = promptLen + WARMUP + steps + 1;
  const cacheDims = [1, numKvHeads, capacity, headDim];
  const cache = Array.from(
    { length: 2 * numLayers },
    () => new Float32Array(numKvHeads * capacity * headDim),
  );
  return timeSteps((ids, length) => {
    const seq = ids.length;
    const mask = new BigInt64Array(capacity + seq);
    mask.fill(1n, 0, length);
    mask.fill(1n, capacity);
    const feeds: Record<string, HostTensor> = {
      ...tokenFeeds(ids, length),
      [IO.attentionMask]: { type: "int64", dims: [1, capacity + seq], data: mask },
    };
    for (let l = 0; l < numLayers; l++) {
      feeds[IO.pastKey(l)] = { type: "float32", dims: cacheDims, data: cache[2 * l] as Float32Array };
      feeds[IO.pastValue(l)] = { type: "float32", dims: cacheDims, data: cache[2 * l + 1] as Float32Array };
    }
    return async () => {
      const out = await run(feeds);
      for (let l = 0; l < numLayers; l++)
        for (const [k, name] of [IO.appendedKey(l), IO.appendedValue(l)].entries()) {
          const src = out[name]?.data as Float32Array;
          const dst = cache[2 * l + k] as Float32Array;
          for (let h = 0; h < numKvHeads; h++)
            dst.set(
              src.subarray(h * seq * headDim, (h + 1) * seq * headDim),
              (h * capacity + length) * headDim,
            );
        }
      return out[IO.logits]?.data as Float32Array;
    };
  });
}

/** Nearest-rank p50, p10 and p90 of a variant's step times, ms. */
const stats = (ms: number[]) => ({
  p50: percentile(ms, 50),
  p10: percentile(ms, 10),
  p90: percentile(ms, 90),
});
const results: { name: string; timing: Timing }[] = [];

async function variant(name: string, body: () => Promise<Timing>): Promise<void> {
  const t = performance.now();
  try {
    results.push({ name, timing: await body() });
    say(`${name}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  } catch (e) {
    say(`${name}: could not run: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
  }
}

say(
  `ort-native probe: ${graph} on ${ep}; ${numLayers} layers; LoRA r=${RANK} on ${spec.modules.size} modules (${(factorBytes / 1e6).toFixed(1)} MB of factors); prompt ${promptLen}, ${steps} timed decode steps after ${WARMUP} warm-up`,
);

await variant("(a) onnxruntime-node, factors as host inputs every step", async () => {
  const session = await createSession(graph, { executionProviders: [ep] });
  try {
    const factorFeeds = Object.fromEntries(
      Object.entries(factors).map(([k, t]) => [k, new ort.Tensor("float32", t.data as Float32Array, t.dims)]),
    );
    return await decode(async (feeds) => {
      const stock: Record<string, ort.Tensor> = { ...factorFeeds };
      for (const [k, t] of Object.entries(feeds)) stock[k] = new ort.Tensor(t.type, t.data, t.dims);
      const out = await session.run(stock);
      return Object.fromEntries(
        Object.entries(out).map(([k, t]) => [
          k,
          { type: "float32", dims: t.dims, data: t.data as Float32Array },
        ]),
      );
    });
  } finally {
    await session.release();
  }
});

const addon = loadOrtNative(values.addon);
if (!addon.ok) say(`ort-native: not loaded (${addon.error.reason}): ${addon.error.message}`);
else
  for (const [name, useTf32] of [
    ["(b) ort-native, factors uploaded once to device tensors and bound", true],
    ["(c) (b) with use_tf32=0", false],
  ] as const)
    await variant(name, async () => {
      // The CPU EP (a dry run of the probe off the GPU) has no TF32: (c) repeats (b) there.
      const session = addon.value.createSession(graph, ep === "cuda" ? { ep, useTf32 } : { ep });
      const resident: DeviceTensor[] = [];
      try {
        const t = performance.now();
        const bound: Record<string, DeviceTensor> = {};
        for (const [k, f] of Object.entries(factors)) {
          const tensor = session.upload(f);
          resident.push(tensor);
          bound[k] = tensor;
        }
        say(
          `  uploaded ${resident.length} factor tensors in ${(performance.now() - t).toFixed(0)} ms; "host" outputs in ${session.hostOutputs} memory`,
        );
        let first: Record<string, HostTensor> | undefined;
        const timing = await decode(async (feeds) => {
          first ??= feeds;
          return session.run({ ...feeds, ...bound });
        });
        if (useTf32 && first !== undefined) await deviceOutputs(session, { ...first, ...bound });
        return timing;
      } finally {
        for (const r of resident) r.release();
        session.release();
      }
    });

if (addon.ok && manifest.files.model !== undefined)
  await variant(
    "(d) ort-native, full graph, presents left on the device as the next past, use_tf32=0",
    async () => {
      const full = `${values.model}/${manifest.files.model}`;
      const session = addon.value.createSession(full, ep === "cuda" ? { ep, useTf32: false } : { ep });
      const bound: Record<string, DeviceTensor> = {};
      try {
        for (const [k, f] of Object.entries(factors)) bound[k] = session.upload(f);
        return await decodeFull(session, bound);
      } finally {
        for (const r of Object.values(bound)) r.release();
        session.release();
      }
    },
  );

/**
 * `decode` as DecoderSession runs the full graph on ort-native: each step's `present.*` come back
 * as device tensors and go in as the next `past_key_values.*`, so the cache's shapes grow by one
 * column per step (the append graph's host cache has a fixed capacity).
 */
async function decodeFull(session: NativeSession, bound: Record<string, DeviceTensor>): Promise<Timing> {
  const empty: HostTensor = { type: "float32", dims: [1, numKvHeads, 0, headDim], data: new Float32Array(0) };
  const presents = Array.from({ length: numLayers }, (_, l) => [IO.presentKey(l), IO.presentValue(l)]).flat();
  const targets = Object.fromEntries([
    [IO.logits, "host" as const],
    ...presents.map((n) => [n, "device" as const]),
  ]);
  // Set by the runs (closures): typed wide so that `finally` does not narrow it to null.
  let past = null as DeviceTensor[] | null;
  try {
    return await timeSteps((ids, length) => {
      const total = length + ids.length;
      const feeds: Record<string, HostTensor | DeviceTensor> = {
        ...bound,
        ...tokenFeeds(ids, length),
        [IO.attentionMask]: { type: "int64", dims: [1, total], data: new BigInt64Array(total).fill(1n) },
      };
      for (let l = 0; l < numLayers; l++) {
        feeds[IO.pastKey(l)] = past?.[2 * l] ?? empty;
        feeds[IO.pastValue(l)] = past?.[2 * l + 1] ?? empty;
      }
      return async () => {
        const out = await session.run(feeds, targets);
        for (const t of past ?? []) t.release();
        past = presents.map((n) => out[n] as DeviceTensor);
        return (out[IO.logits] as HostTensor).data as Float32Array;
      };
    });
  } finally {
    for (const t of past ?? []) t.release();
  }
}

/**
 * One run fetching the logits and layer 0's appended keys as `"device"` outputs (left where ORT
 * put them), another fetching them to the host; prints their dims, memory and largest difference.
 */
async function deviceOutputs(
  session: NativeSession,
  feeds: Record<string, HostTensor | DeviceTensor>,
): Promise<void> {
  const names = [IO.logits, IO.appendedKey(0)];
  const host = await session.run(feeds, Object.fromEntries(names.map((n) => [n, "host" as const])));
  const device = await session.run(feeds, Object.fromEntries(names.map((n) => [n, "device" as const])));
  try {
    for (const name of names) {
      const [d, h] = [device[name], host[name]];
      if (d === undefined || h === undefined) throw new Error(`${name} missing`);
      const got = d.download().data as Float32Array;
      let diff = 0;
      for (let v = 0; v < got.length; v++)
        diff = Math.max(diff, Math.abs((got[v] ?? 0) - (h.data[v] as number)));
      say(
        `  "device" output ${name}: [${d.dims.join(", ")}] ${d.type} in ${d.location} memory (${d.bytes} bytes); max |downloaded − host output| ${diff.toExponential(2)}`,
      );
    }
  } finally {
    for (const t of Object.values(device)) t.release();
  }
}

const a = results[0]?.name.startsWith("(a)") ? results[0] : undefined;
say("\n| variant | ms / step p50 | p10 | p90 | vs (a) | max |logit − (a)| | event-loop delay max |");
say("|---|---|---|---|---|---|---|");
for (const { name, timing } of results) {
  const s = stats(timing.ms);
  const base = a === undefined ? Number.NaN : stats(a.timing.ms).p50;
  let diff = 0;
  if (a !== undefined)
    for (let v = 0; v < timing.firstLogits.length; v++)
      diff = Math.max(diff, Math.abs((timing.firstLogits[v] ?? 0) - (a.timing.firstLogits[v] ?? 0)));
  say(
    `| ${name} | ${s.p50.toFixed(2)} | ${s.p10.toFixed(2)} | ${s.p90.toFixed(2)} | ${(s.p50 - base).toFixed(2)} ms | ${diff.toExponential(2)} | ${timing.loopDelayMs.toFixed(1)} ms |`,
  );
}
process.exitCode = a === undefined ? 1 : 0;
