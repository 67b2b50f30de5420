/**
 * The addon's fused LoRA op (`ai.loracast.LoraShrinkExpand`, shared/ort-native/lora-cuda.cc) on the
 * CUDA EP, for the lead's device call (issue 18):
 *  1. correctness: both CUDA kernels (the node's `kernel` attribute: "split", shrink then expand,
 *     and "fused", lora_fused's one launch) against the float64 reference and against the op's CPU kernel
 *     (the addon's cpu session) over `LORA_SHAPES` (lora-op.test.ts's: M = 0 to 4100, R = 0 to 80,
 *     above the expand's 64-rank chunk, K = 896, 4864 and odd, N up to 9728), each as the largest
 *     error over the terms' magnitude (`loraRelativeError`, tolerance 1e-5), and the two kernels'
 *     outputs against each other bit for bit (lora-kernels.cu's promise);
 *  2. speed: µs per LoRA branch at M = `--ms` (default 1 and 8) for Qwen2.5-0.5B's four packed
 *     modules (r = 16 per module: qkv R 48, o R 16, gate_up R 32, down R 16), the op's two CUDA
 *     kernels ("fused single": one launch; "fused split": two) against the decoder's two Gemms on
 *     the CUDA EP (TF32 off, as the decoder runs), from chains of `--nodes` branches minus a chain
 *     of one (so a run's fixed cost cancels), with every input a device tensor; plain runs and CUDA
 *     graph replay (`enableCudaGraph`, the first run captures); each fused chain's output against the
 *     Gemms' (float32 rounding) and its replays' against its plain runs' (identical bits). The
 *     single/split columns are what auto's row threshold (FUSED_MAX_ROWS in lora-cuda.cc) is set from.
 * Prints two tables; exits 1 when a correctness check fails, 3 when the addon does not load.
 *
 * node lora-op-check.mjs --addon=FILE [--nodes=32] [--runs=40] [--ms=1,8] [--ep=cuda|cpu]
 */
import {
  type DeviceTensor,
  type HostTensor,
  LORA_SHAPES,
  type LoraOperands,
  loadOrtNative,
  loraChainModel,
  loraFeeds,
  loraReference,
  loraRelativeError,
  type NativeSession,
  randomLoraOperands,
} from "@loracast/shared/ort-native";
import { parseCommandLine } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { percentile } from "../percentile.ts";
import { ADDON_FLAG, probeFlags, say } from "./flags.ts";

const cli = {
  usage: "node lora-op-check.mjs --addon=FILE [flags]",
  about:
    "The addon's fused LoRA op (ai.loracast.LoraShrinkExpand): its CUDA kernels against float64 and its CPU kernel, then µs per LoRA branch against the decoder's two Gemms, plain runs and CUDA graph replay.",
  flags: {
    addon: ADDON_FLAG,
    nodes: { type: "string", default: "32", help: "LoRA branches in a timed chain, 2 to 128" },
    runs: { type: "string", default: "40", help: "timed runs per chain, 5 to 1000" },
    ep: { type: "string", default: "cuda", help: "execution provider: cuda, or cpu (a dry run off the GPU)" },
    ms: {
      type: "string",
      default: "1,8",
      help: "rows of x to time, comma-separated, at most 8, each 1 to 4096",
    },
  },
} as const;
const { values } = parseCommandLine(cli);
const flags = probeFlags(cli, values);
const nodes = flags.int("nodes", 2, 128);
const runs = flags.int("runs", 5, 1000);
const ms = flags.ints("ms", 1, 4096, 8);
const WARMUP = 3;
// `--ep=cpu`: a dry run of this script where there is no GPU (the "cuda" column is then the cpu
// session again, and the CUDA graph columns are n/a).
const ep = flags.oneOf("ep", ["cuda", "cpu"]);
const epOptions = ep === "cuda" ? ({ ep, useTf32: false } as const) : ({ ep } as const);
const TOLERANCE = 1e-5;

const loaded = loadOrtNative(values.addon);
if (!loaded.ok) {
  say(`lora-op check: the addon did not load (${loaded.error.reason}): ${loaded.error.message}`);
  process.exit(3);
}
const native = loaded.value;
const rng = createRng(19);
const operands = (m: number, k: number, r: number, n: number) => randomLoraOperands(rng, m, k, r, n);
const host = (data: Float32Array, dims: number[]): HostTensor => ({ type: "float32", dims, data });
const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0];

// --- 1. correctness -----------------------------------------------------------------------------
say(
  `lora-op check on ORT ${native.ortVersion}, ${ep}: correctness (largest |error| / terms' magnitude, tolerance ${TOLERANCE})`,
);
say(
  "| M | K | R | N | cuda split vs float64 | cuda single vs float64 | cpu vs float64 | cuda split vs cpu | cuda single vs cpu | single = split, bits | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|",
);
let failed = 0;
const cpu = native.createSession(loraChainModel("fused"), { ep: "cpu" });
const cudaSplit = native.createSession(loraChainModel("fused", 1, "split"), epOptions);
const cudaSingle = native.createSession(loraChainModel("fused", 1, "fused"), epOptions);
for (const [m, k, r, n] of LORA_SHAPES) {
  const o = operands(m, k, r, n);
  const feeds = loraFeeds(o);
  try {
    const reference = loraReference(o);
    const onCpu = (await cpu.run(feeds)).z?.data as Float32Array;
    const cpuError = loraRelativeError(onCpu, reference);
    const cells: string[] = [];
    const between: string[] = [];
    let ok = cpuError <= TOLERANCE;
    const outputs: Float32Array[] = [];
    for (const session of [cudaSplit, cudaSingle]) {
      const onCuda = (await session.run(feeds)).z?.data as Float32Array;
      outputs.push(onCuda);
      const gpuError = loraRelativeError(onCuda, reference);
      const apart = loraRelativeError(onCuda, { z: Float64Array.from(onCpu), scale: reference.scale });
      ok &&= gpuError <= TOLERANCE && apart <= 2 * TOLERANCE;
      cells.push(gpuError.toExponential(2));
      between.push(apart.toExponential(2));
    }
    // The kernels' promise (lora-kernels.cu): a row's z has the same bits in either form.
    const [split, single] = outputs as [Float32Array, Float32Array];
    const same = split.length === single.length && split.every((v, i) => Object.is(v, single[i]));
    ok &&= same;
    if (!ok) failed++;
    say(
      `| ${m} | ${k} | ${r} | ${n} | ${cells.join(" | ")} | ${cpuError.toExponential(2)} | ${between.join(" | ")} | ${same ? "identical" : "DIFFER"} | ${ok ? "ok" : "FAIL"} |`,
    );
  } catch (e) {
    failed++;
    say(`| ${m} | ${k} | ${r} | ${n} | could not run: ${message(e)} | | | | | | FAIL |`);
  }
}
cpu.release();
cudaSplit.release();
cudaSingle.release();

// --- 2. speed -----------------------------------------------------------------------------------
/** Qwen2.5-0.5B's packed modules at r = 16 per module (hidden 896, intermediate 4864, 2 KV heads). */
const MODULES: [name: string, k: number, r: number, n: number][] = [
  ["qkv", 896, 48, 1152],
  ["o", 896, 16, 896],
  ["gate_up", 896, 32, 9728],
  ["down", 4864, 16, 896],
];

/** The timed forms: the op with either CUDA kernel forced, and the decoder's two Gemms. */
const FORMS = ["fused single", "fused split", "gemms"] as const;
type Form = (typeof FORMS)[number];
const chain = (form: Form, length: number) =>
  form === "gemms"
    ? loraChainModel("gemms", length)
    : loraChainModel("fused", length, form === "fused single" ? "fused" : "split");

/** ms per run (median of `runs`) of a chain of `length` branches, all inputs device tensors. */
async function msPerRun(
  form: Form,
  length: number,
  o: LoraOperands,
  cudaGraph: boolean,
): Promise<{ ms: number; z: Float32Array }> {
  const session: NativeSession = native.createSession(chain(form, length), {
    ...epOptions,
    ...(cudaGraph ? { enableCudaGraph: true } : {}),
    dedicatedThread: true,
  });
  const owned: DeviceTensor[] = [];
  const device = (t: HostTensor) => {
    const d = session.upload(t);
    owned.push(d);
    return d;
  };
  try {
    const feeds: Record<string, DeviceTensor> = {
      x: device(host(o.x, [o.m, o.k])),
      y: device(host(o.y, [o.m, o.n])),
    };
    // Each branch its own device copy of the same factors: distinct inputs, so ORT's common
    // subexpression elimination cannot merge the Gemm form's shrinks.
    for (let i = 0; i < length; i++) {
      feeds[`A${i}`] = device(host(o.a, [o.r, o.k]));
      feeds[`B${i}`] = device(host(o.b, [o.n, o.r]));
    }
    const z = session.allocate("float32", [o.m, o.n]);
    owned.push(z);
    const times: number[] = [];
    for (let i = 0; i < WARMUP + runs; i++) {
      const t0 = performance.now();
      await session.run(feeds, { z }, cudaGraph ? { graphId: 1 } : {});
      if (i >= WARMUP) times.push(performance.now() - t0);
    }
    return { ms: percentile(times, 50), z: z.download().data as Float32Array };
  } finally {
    for (const t of owned) t.release();
    session.release();
  }
}

say(
  `\nspeed: µs per LoRA branch (median run of a ${nodes}-branch chain minus a 1-branch chain, over ${nodes - 1}), TF32 off`,
);
say(
  "| module | M | K | R | N | fused single, plain | fused split, plain | Gemms, plain | fused single, CUDA graph | fused split, CUDA graph | Gemms, CUDA graph | single / split vs Gemms output | single / split replay vs plain |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|",
);
for (const [name, k, r, n] of MODULES)
  for (const m of ms) {
    const o = operands(m, k, r, n);
    const cells: string[] = [];
    const chainZ: Record<string, Float32Array> = {};
    for (const cudaGraph of [false, true])
      for (const form of FORMS) {
        if (cudaGraph && ep === "cpu") {
          cells.push("n/a");
          continue;
        }
        try {
          const long = await msPerRun(form, nodes, o, cudaGraph);
          const short = await msPerRun(form, 1, o, cudaGraph);
          cells.push(((1000 * (long.ms - short.ms)) / (nodes - 1)).toFixed(2));
          chainZ[`${form}${cudaGraph ? " graph" : ""}`] = long.z;
        } catch (e) {
          cells.push(`could not run: ${message(e)}`);
        }
      }
    // The chain adds `nodes` identical branches, z = y + nodes·(x·Aᵀ)·Bᵀ: the reference's scale
    // for that sum bounds the two forms' float32 difference. The op's kernels sum in a fixed
    // order, so its replays must give the plain runs' bits.
    const gemms = chainZ.gemms;
    const { scale } = loraReference({ ...o, b: o.b.map((v) => v * nodes) });
    const apart: string[] = [];
    const replay: string[] = [];
    for (const form of ["fused single", "fused split"] as const) {
      const [fused, replayed] = [chainZ[form], chainZ[`${form} graph`]];
      if (fused && gemms) {
        const error = loraRelativeError(fused, { z: Float64Array.from(gemms), scale });
        apart.push(`${error.toExponential(2)}${error <= 2 * TOLERANCE ? "" : " FAIL"}`);
        if (error > 2 * TOLERANCE) failed++;
      } else apart.push("n/a");
      if (fused && replayed) {
        const same = fused.every((v, i) => Object.is(v, replayed[i]));
        replay.push(same ? "identical" : "DIFFER (FAIL)");
        if (!same) failed++;
      } else replay.push("n/a");
    }
    say(
      `| ${name} | ${m} | ${k} | ${r} | ${n} | ${cells.join(" | ")} | ${apart.join(" / ")} | ${replay.join(" / ")} |`,
    );
  }
if (failed > 0) {
  say(`lora-op check: ${failed} correctness case(s) FAILED`);
  process.exitCode = 1;
} else say("lora-op check: every correctness case ok");
