/**
 * Which graph form of a LoRA pair ORT's WebGPU EP runs fast (issue 18: rank 16 cost 13–15 ms per
 * decode step over rank 0 on the H200, whatever the batch). For each form of
 * `shared/model-builder/lora-forms.ts` it builds a graph of `--layers` layers × the 4 packed
 * modules of Qwen2.5-0.5B (qkv 896→1152 Σr=3r, o 896→896 r, gate_up 896→9728 Σr=2r, down
 * 4864→896 r), each module `y = bias + (x · Aᵀ) · Bᵀ` chained as the decoder chains them (q
 * slice into o, gate·up into down, down into the next layer); the factors are graph inputs kept in
 * GPU memory (uploaded once, `runtime/gpu-transfer.ts`, as the engine does), the biases stand in
 * for the base projections' outputs. Each run feeds x `[batch, 896]` from the host and reads the
 * output back, so its time includes the GPU work; a batch of 1024 stands for a prefill's tokens
 * (where `mulsum`'s intermediate grows and `splitk`'s dispatch passes 65535 workgroups in z).
 * Rows besides the forms: `identity` (x through one
 * Identity node: the run's own floor), `rank0` (the `gemm` form with empty factors: the dispatch
 * floor) and `gemm-bmatmul` (A side as `gemm`, B side as `MatMul` + `Add`, B stored `[r, out]`).
 * Prints per row and batch: ms per run (median, p10, p90 of `--runs` after `--warmup`), ms per
 * layer above `identity`, the node count, and max |diff| against the `gemm` form's output (relative
 * to its max |value|; every form must agree within `TOLERANCE`). Exits 1 when a row fails or
 * disagrees, 2 on a bad flag. `--ep=cpu` checks it all here (its times mean nothing for the GPU).
 *
 * node webgpu-lora-probe.mjs [--ep=webgpu] [--batches=1,8,1024] [--runs=50] [--warmup=5] [--layers=24]
 *   [--rank=16] [--chunk=64] [--variants=identity,rank0,gemm,gemm-bmatmul,matmul,mulsum,splitk,splitk-t]
 */

import { loraDown, loraUp } from "@loracast/shared/model-builder";
import { type LoraForm, loraALayout, loraFormSchema } from "@loracast/shared/model-format";
import { attr, encodeModel, GraphBuilder } from "@loracast/shared/onnx";
import { parseCommandLine, usageError } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { createSession, type ExecutionProvider } from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";
import { GpuFeeds } from "../../../shared/runtime/gpu-transfer.ts";
import { QWEN25_05B } from "../engine/configs.ts";
import { percentile } from "../percentile.ts";
import { probeFlags, say } from "./flags.ts";

const VARIANTS = [
  "identity",
  "rank0",
  "gemm",
  "gemm-bmatmul",
  ...loraFormSchema.options.filter((f) => f !== "gemm"),
] as const;
type Variant = (typeof VARIANTS)[number];
/** Max |diff| / max |reference| a form may show against `gemm`: float32 rounding of another order. */
const TOLERANCE = 1e-5;

const cli = {
  usage: "node webgpu-lora-probe.mjs [flags]",
  about:
    "LoRA pair graph forms on an ORT EP: Qwen2.5-0.5B packed-module shapes, factors resident, ms per run and agreement with the gemm form.",
  flags: {
    ep: { type: "string", default: "webgpu", help: "execution provider: webgpu or cpu" },
    batches: {
      type: "string",
      default: "1,8,1024",
      help: "token rows per run (decode batches, a prefill's tokens), comma-separated, each 1 to 4096",
    },
    runs: { type: "string", default: "50", help: "timed runs per row and batch, 5 to 500" },
    warmup: { type: "string", default: "5", help: "untimed runs first, 1 to 100" },
    layers: { type: "string", default: "24", help: "decoder layers, 1 to 48" },
    rank: { type: "string", default: "16", help: "LoRA rank per module, 1 to 64" },
    chunk: { type: "string", default: "64", help: "the splitk form's chunk of in: 16, 32, 64 or 128" },
    variants: {
      type: "string",
      default: VARIANTS.join(","),
      help: `rows, comma-separated, of ${VARIANTS.join(", ")}`,
    },
  },
} as const;
const { values } = parseCommandLine(cli);
const flags = probeFlags(cli, values);
const ep: ExecutionProvider = flags.oneOf("ep", ["webgpu", "cpu"]);
const batches = flags.ints("batches", 1, 4096, 4);
const runs = flags.int("runs", 5, 500);
const warmup = flags.int("warmup", 1, 100);
const layers = flags.int("layers", 1, 48);
const rank = flags.int("rank", 1, 64);
const chunk = flags.int("chunk", 16, 128);
if (![16, 32, 64, 128].includes(chunk))
  usageError(cli, `--chunk is 16, 32, 64 or 128 (it divides 896 and 4864), not ${chunk}`);
const variants = values.variants.split(",").map((v) => {
  if (!(VARIANTS as readonly string[]).includes(v))
    usageError(cli, `--variants: ${v} is not one of ${VARIANTS.join(", ")}`);
  return v as Variant;
});

const D = QWEN25_05B.hidden_size;
const I = QWEN25_05B.intermediate_size;
const kv = (QWEN25_05B.num_key_value_heads * D) / QWEN25_05B.num_attention_heads;
/** The packed modules of one layer (vLLM's), with how many rank-r members each stacks. */
const MODULES = [
  { name: "qkv_proj", inF: D, outF: D + 2 * kv, members: 3 },
  { name: "o_proj", inF: D, outF: D, members: 1 },
  { name: "gate_up_proj", inF: D, outF: 2 * I, members: 2 },
  { name: "down_proj", inF: I, outF: D, members: 1 },
] as const;
type Module = (typeof MODULES)[number];

const rng = createRng(18);
const uniform = (n: number, scale: number) =>
  Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
/** Per layer and module: A `[Σr, in]`, B `[out, Σr]` (PEFT's layouts) and the stand-in base output. */
const weights = Array.from({ length: layers }, () =>
  MODULES.map((m) => {
    const r = m.members * rank;
    return {
      a: uniform(r * m.inF, 1 / Math.sqrt(m.inF)),
      b: uniform(m.outF * r, 1 / Math.sqrt(r)),
      bias: uniform(m.outF, 1),
    };
  }),
);

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j] ?? 0;
  return out;
}

/** A variant's graph (model bytes, node count, output name) and its factor feeds in its layouts. */
function build(variant: Variant): {
  model: Uint8Array;
  nodes: number;
  output: string;
  feeds: Record<string, ort.Tensor>;
} {
  const g = new GraphBuilder("webgpu-lora-probe");
  const feeds: Record<string, ort.Tensor> = {};
  const x = g.input("x", "float32", ["tokens", D]);
  const form: LoraForm =
    variant === "identity" || variant === "rank0" || variant === "gemm-bmatmul" ? "gemm" : variant;
  const r0 = variant === "rank0";
  /** A factor input: `shape`'s "r" is its rank (symbolic in the graph, 0 for `rank0`). */
  const input = (name: string, shape: readonly (number | "r")[], data: Float32Array, r: number) => {
    g.input(
      name,
      "float32",
      shape.map((d) => (d === "r" ? `${name}.r` : d)),
    );
    const dims = shape.map((d) => (d === "r" ? (r0 ? 0 : r) : d));
    feeds[name] = new ort.Tensor("float32", r0 ? new Float32Array(0) : data, dims);
    return name;
  };
  const pair = (layer: number, mi: number, x: string): string => {
    const m: Module = MODULES[mi] as Module;
    const w = weights[layer]?.[mi];
    if (w === undefined) throw new Error("unreachable: no weights");
    const r = m.members * rank;
    const p = `layers.${layer}.${m.name}`;
    const bias = g.initializer(`${p}.bias`, "float32", [m.outF], w.bias);
    const a =
      loraALayout(form) === "rows"
        ? input(`${p}.A`, ["r", m.inF], w.a, r)
        : input(`${p}.A`, [m.inF, "r"], transpose(w.a, r, m.inF), r);
    const h = loraDown(g, form, x, a, m.inF, chunk);
    if (variant !== "gemm-bmatmul") return loraUp(g, h, input(`${p}.B`, [m.outF, "r"], w.b, r), bias);
    const bt = input(`${p}.B`, ["r", m.outF], transpose(w.b, m.outF, r), r);
    return g.op1("Add", [g.op1("MatMul", [h, bt]), bias]);
  };
  let h = x;
  if (variant === "identity") h = g.op1("Identity", [x]);
  else
    for (let layer = 0; layer < layers; layer++)
      h = g.scoped(`layers.${layer}`, () => {
        const i64 = (...v: number[]) => g.constant("int64", [v.length], v);
        const qkv = pair(layer, 0, h);
        const o = pair(layer, 1, g.op1("Slice", [qkv, i64(0), i64(D), i64(1)]));
        const [gate = "", up = ""] = g.op(
          "Split",
          [pair(layer, 2, o), i64(I, I)],
          { axis: attr.int(1) },
          { outputs: 2 },
        );
        return pair(layer, 3, g.op1("Mul", [gate, up]));
      });
  g.output(h, "float32", ["tokens", D]);
  const graph = g.build();
  const model = encodeModel({ graph, opsets: { "": 21 }, producer: "loracast" });
  return { model, nodes: graph.nodes.length, output: h, feeds };
}

interface Row {
  variant: Variant;
  batch: number;
  ms: number[];
  nodes: number;
  out: Float32Array | null;
  error: string | null;
}

say(
  `webgpu-lora probe: ep ${ep}, ORT ${JSON.stringify(ort.env.versions)}, ${layers} layers, rank ${rank} per module, split-K chunk ${chunk}, ${warmup} warm-up + ${runs} timed runs`,
);
const inputs = new Map(batches.map((b) => [b, new ort.Tensor("float32", uniform(b * D, 1), [b, D])]));
const rows: Row[] = [];
for (const variant of variants) {
  const built = build(variant);
  let session: ort.InferenceSession | null = null;
  let uploader: GpuFeeds | null = null;
  try {
    session = await createSession(built.model, { executionProviders: [ep] });
    // The factors in GPU memory, once, as the engine keeps them (host feeds on the CPU EP).
    const names = Object.keys(built.feeds);
    uploader = ep === "webgpu" && names.length > 0 ? await GpuFeeds.create(names) : null;
    const factors = uploader === null ? built.feeds : await uploader.place(built.feeds);
    for (const batch of batches) {
      const feeds = { ...factors, x: inputs.get(batch) as ort.Tensor };
      const ms: number[] = [];
      let out: Float32Array | null = null;
      for (let i = 0; i < warmup + runs; i++) {
        const t0 = performance.now();
        const result = await session.run(feeds);
        out = result[built.output]?.data as Float32Array;
        if (i >= warmup) ms.push(performance.now() - t0);
      }
      rows.push({ variant, batch, ms, nodes: built.nodes, out, error: null });
    }
  } catch (e) {
    for (const batch of batches)
      rows.push({ variant, batch, ms: [], nodes: built.nodes, out: null, error: String(e).slice(0, 300) });
  } finally {
    await session?.release();
    await uploader?.release();
  }
}

const fmt = (n: number, digits = 3) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
say(
  "| form | batch | ms/run p50 | p10 | p90 | ms/layer above identity | nodes | max abs diff vs gemm | relative | agrees |",
);
say("|---|---|---|---|---|---|---|---|---|---|");
let failed = false;
for (const row of rows) {
  if (row.error !== null) {
    failed = true;
    say(`| ${row.variant} | ${row.batch} | failed: ${row.error} |`);
    continue;
  }
  const floor = rows.find((r) => r.variant === "identity" && r.batch === row.batch && r.error === null);
  const p50 = percentile(row.ms, 50);
  const above =
    floor === undefined || row.variant === "identity"
      ? Number.NaN
      : (p50 - percentile(floor.ms, 50)) / layers;
  const ref = rows.find((r) => r.variant === "gemm" && r.batch === row.batch)?.out ?? null;
  let diff = Number.NaN;
  let rel = Number.NaN;
  let agrees = "-";
  if (ref !== null && row.out !== null && !["identity", "rank0"].includes(row.variant)) {
    diff = 0;
    let scale = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs((row.out[i] ?? Number.NaN) - (ref[i] ?? 0));
      diff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(diff, d);
      scale = Math.max(scale, Math.abs(ref[i] ?? 0));
    }
    rel = diff / scale;
    agrees = rel <= TOLERANCE && row.out.length === ref.length ? "yes" : "NO";
    if (agrees === "NO") failed = true;
  }
  say(
    `| ${row.variant} | ${row.batch} | ${fmt(p50)} | ${fmt(percentile(row.ms, 10))} | ${fmt(percentile(row.ms, 90))} | ${fmt(above, 4)} | ${row.nodes} | ${Number.isNaN(diff) ? "-" : diff.toExponential(2)} | ${Number.isNaN(rel) ? "-" : rel.toExponential(2)} | ${agrees} |`,
  );
}
process.exit(failed ? 1 : 0);
