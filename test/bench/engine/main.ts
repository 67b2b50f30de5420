/**
 * npm run bench:engine [-- --accuracy-level=0|4 --block-size=32|128 --ep=cpu|webgpu|cuda --compare=true|false --rounds=5 --swaps=1000 --throughput=true|false
 *   --profile=0 --attention=ops|gqa|both --kv-cache-dtype=auto|float32|float16
 *   --backend=auto|ort-native|onnxruntime-node|both --tf32=on|off|default --base-graph=auto|on|off|both
 *   --lora-form=auto|<form>[,<form>…] --lora-op=gemm|shrink-expand|both]
 *
 * On a model with Qwen2.5-0.5B's dimensions and seeded random weights (no real weights can be
 * downloaded here), in one process:
 * - prefill and decode tok/s at batch 1 and 8 for the int4 base alone, the int4 base + LoRA r=16 on
 *   all seven projections, and the same LoRA merged into fp16 weights (what merge-and-ship does);
 * - the peer, transformers.js on the same ORT, on the same int4 weights exported with its naming
 *   (with the merged variant, skipped by `--compare=false`: on a GPU the peer is HF + PEFT);
 * - the node count of one decode step's graph, as built and after ORT's optimizer on the EP, and
 *   what a decode step copies between host and device, with a probe's estimate of its cost;
 * - adapter activation time and RSS over many swaps on one session.
 * `--backend=both` runs the loracast rows on the ort-native addon and adds the same rows on the
 * stock binding beside them, suffixed "(onnxruntime-node)", interleaved in each round.
 * The base rows run what a base-only request runs with `--base-graph` as the decoder's `baseGraph`
 * (`auto`: the graph without LoRA inputs on cuda and webgpu, the LoRA graph with rank-0 factors on
 * the cpu); `both` runs the base graph and adds rows "int4 base, rank-0 LoRA graph" beside them.
 * `--lora-form` picks how the loracast graphs compute each LoRA pair's x·Aᵀ (`build-model
 * --lora-form`; `auto`: the EP's build, `splitk-t` on webgpu, `gemm` elsewhere); further forms after a
 * comma add LoRA rows "int4 + LoRA r=16 ×7, <form> form" beside the main ones (the main rows' attention).
 * `--lora-op` builds the LoRA graphs with ONNX ops per LoRA branch (`gemm`, in the form above) or one
 * fused `LoraShrinkExpand` node (`shrink-expand`, in `<dir>-shrink-expand`; it runs on the ort-native
 * addon only); `both` adds LoRA rows suffixed ", shrink-expand" beside the gemm ones, for each
 * attention built.
 */

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { writeRandomCheckpoint } from "@loracast/dev-support/models";
import { PROJECTIONS } from "@loracast/shared/architectures";
import { formatVersionRef } from "@loracast/shared/manifest";
import {
  type BaseQuant,
  type BuildOptions,
  buildArtifacts,
  countDecodeStepNodes,
  defaultLoraForm,
  parseArchitecture,
  transformersJsDtype,
} from "@loracast/shared/model-builder";
import {
  kvCacheDtypeSchema,
  type LoraForm,
  type LoraOp,
  readModelManifest,
} from "@loracast/shared/model-format";
import { loadModelSpec, verifyAdapterFiles } from "@loracast/shared/model-spec";
import {
  adapterFeeds,
  baseFeeds,
  DecoderSession,
  type LoraFeeds,
  type OrtBackend,
} from "@loracast/shared/runtime";
import { randomAdapter } from "../../helpers/adapters.ts";
import { QWEN25_05B } from "./configs.ts";
import { printDecodeCopies } from "./copies.ts";
import { flagsUsageError, parseFlags } from "./flags.ts";
import { graphNodes } from "./graph-nodes.ts";
import {
  engineGeneration,
  greedyTokens,
  NEW_TOKENS,
  PROMPT_LEN,
  type Throughput,
  type TimedGeneration,
  throughputs,
} from "./ours.ts";
import { formatProfile, profileDecode } from "./profile.ts";
import { measureSwaps } from "./swaps.ts";
import { loadTransformersJs } from "./transformers-js.ts";

const values = parseFlags();
const accuracyLevel = values["accuracy-level"] === 0 ? 0 : 4;
const blockSize = values["block-size"];
const ep = values.ep;
const swaps = values.swaps;
const attention = values.attention;
// The main rows' attention; `both` adds GQA rows beside them.
const mainAttention = attention === "gqa" ? "gqa" : "ops";
const kvFlag = values["kv-cache-dtype"];
const kvCacheDtype = kvCacheDtypeSchema.parse(
  kvFlag === "auto" ? (ep === "cuda" ? "float16" : "float32") : kvFlag,
);
/** The build options of a graph with `a`'s attention: GQA's cache in `kvCacheDtype`. */
const withAttention = (a: "ops" | "gqa") => ({
  attention: a,
  kvCacheDtype: a === "gqa" ? kvCacheDtype : ("float32" as const),
});
const compare = values.compare;
const mainBackend: OrtBackend = values.backend === "both" ? "ort-native" : values.backend;
// `both`: the stock binding's rows beside the addon's.
const stockToo = values.backend === "both";
const tf32 = values.tf32 === "default" ? {} : { cudaTf32: values.tf32 === "on" };
const baseGraphFlag = values["base-graph"];
// `both`: the base graph, and rank-0 rows on the LoRA graph beside it.
const baseGraph = baseGraphFlag === "both" ? "on" : baseGraphFlag;
// The main rows' form first, then the forms whose LoRA rows go beside them.
const [mainLoraForm = "gemm", ...moreLoraForms] = values["lora-form"].map(
  (f): LoraForm => (f === "auto" ? defaultLoraForm(ep) : f),
);
if (moreLoraForms.includes(mainLoraForm))
  flagsUsageError(`--lora-form: ${mainLoraForm} is listed twice (auto is ${defaultLoraForm(ep)} on ${ep})`);
const loraOpFlag = values["lora-op"];
// The main rows' LoRA op; `both` adds shrink-expand LoRA rows (gemm form) beside them.
const mainLoraOp: LoraOp = loraOpFlag === "shrink-expand" ? "shrink-expand" : "gemm";
const say = (s: string) => process.stdout.write(`${s}\n`);
const ALL_SEVEN = PROJECTIONS.map((p) => p.name);

const checkpoint = join(values.work, "qwen25-05b-random");
const int4: BaseQuant = { kind: "nbits", bits: 4, blockSize, emulate: false, accuracyLevel };
// Block 32 keeps the directory names earlier runs built.
const tag = `int4${blockSize === 32 ? "" : `-b${blockSize}`}-acc${accuracyLevel}`;
const gqaTag = (a: string) => (a === "gqa" ? (kvCacheDtype === "float16" ? "-gqa16" : "-gqa") : "");
// gemm keeps the directory names earlier runs built.
const formTag = (f: LoraForm) => (f === "gemm" ? "" : `-${f}`);
// The main rows' attention, so that a form's rows differ from the main ones by the form alone.
const formDir = (f: LoraForm) => join(values.work, `qwen25-05b-${tag}${gqaTag(mainAttention)}${formTag(f)}`);
const opTag = (op: LoraOp) => (op === "gemm" ? "" : `-${op}`);
const dirs = {
  int4: join(
    values.work,
    `qwen25-05b-${tag}${gqaTag(mainAttention)}${formTag(mainLoraForm)}${opTag(mainLoraOp)}`,
  ),
  int4Gqa: join(values.work, `qwen25-05b-${tag}${gqaTag("gqa")}${formTag(mainLoraForm)}${opTag(mainLoraOp)}`),
  // `--lora-op=both`: the shrink-expand builds (gemm form) beside the main ones.
  int4Fused: join(values.work, `qwen25-05b-${tag}${gqaTag(mainAttention)}-shrink-expand`),
  int4GqaFused: join(values.work, `qwen25-05b-${tag}${gqaTag("gqa")}-shrink-expand`),
  merged: join(values.work, `qwen25-05b-merged-fp16${gqaTag(mainAttention)}`),
  tjs: join(values.work, `qwen25-05b-tjs-${tag}`),
};

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t = performance.now();
  const r = await f();
  say(`${what}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return r;
}

/** Whether `dir` holds artifacts this builder wrote: a readable manifest that lists the base graphs. */
const builtWithBase = async (dir: string) => {
  const read = await readModelManifest(dir);
  return read.ok && read.value.manifest.files.base !== undefined;
};

async function buildOnce(what: string, ready: boolean, options: BuildOptions): Promise<void> {
  if (ready) return;
  const built = await timed(what, () => buildArtifacts(options));
  if (!built.ok) throw built.error;
}

await timed("random checkpoint", () => writeRandomCheckpoint(checkpoint, QWEN25_05B, 1));
const configPath = join(checkpoint, "config.json");
const spec = await loadModelSpec(configPath);
if (!spec.ok) throw spec.error;
const loraFiles = randomAdapter(configPath, 7, 16, ALL_SEVEN, 0.02);
const checked = verifyAdapterFiles(spec.value, new TextDecoder().decode(loraFiles.config), loraFiles.weights);
if (!checked.ok) throw new Error(checked.error);
const lora = checked.value.verified;

/** The int4 LoRA builds: per attention built (`--attention`), per LoRA op asked for (`--lora-op`). */
const int4Builds: (readonly [string, string, "ops" | "gqa", LoraForm, LoraOp])[] = [
  ["int4", dirs.int4, mainAttention, mainLoraForm, mainLoraOp],
  ...(attention === "both" ? [["int4 GQA", dirs.int4Gqa, "gqa", mainLoraForm, mainLoraOp] as const] : []),
  ...(loraOpFlag === "both"
    ? [
        ["int4 shrink-expand", dirs.int4Fused, mainAttention, "gemm", "shrink-expand"] as const,
        ...(attention === "both"
          ? [["int4 GQA shrink-expand", dirs.int4GqaFused, "gqa", "gemm", "shrink-expand"] as const]
          : []),
      ]
    : []),
];
for (const [what, outDir, a, loraForm, loraOp] of int4Builds)
  await buildOnce(`${what} artifacts`, await builtWithBase(outDir), {
    checkpointDir: checkpoint,
    outDir,
    quant: int4,
    ...withAttention(a),
    loraForm,
    loraOp,
  });
say(`int4 model dirs: ${int4Builds.map(([what, dir]) => `${what} ${basename(dir)}`).join(", ")}`);
for (const form of moreLoraForms)
  await buildOnce(`int4 artifacts, LoRA form ${form}`, await builtWithBase(formDir(form)), {
    checkpointDir: checkpoint,
    outDir: formDir(form),
    quant: int4,
    ...withAttention(mainAttention),
    loraForm: form,
  });
await buildOnce("merged fp16 artifacts", !compare || (await readModelManifest(dirs.merged)).ok, {
  checkpointDir: checkpoint,
  outDir: dirs.merged,
  quant: { kind: "fp16" },
  merge: lora,
  ...withAttention(mainAttention),
});
await buildOnce("transformers.js export", !compare || existsSync(join(dirs.tjs, "onnx")), {
  checkpointDir: checkpoint,
  outDir: dirs.tjs,
  quant: int4,
  format: "transformers.js",
});

// The decode step's nodes in both layouts (docs/architecture.md, "Model artifacts"), by op type.
const arch = parseArchitecture(JSON.parse(await readFile(configPath, "utf8")));
if (!arch.ok) throw arch.error;
say(
  `\nnodes per decode step, int4, as built (LoRA form ${mainLoraForm} unless named): layout | total | LoRA | by op type`,
);
const fusedRows =
  loraOpFlag === "both"
    ? (["ops", "gqa"] as const).map((a) => ["fused", a, true, "gemm", "shrink-expand"] as const)
    : [];
for (const [layout, a, lora, form, loraOp] of [
  ["per-module", "ops", true, "gemm", "gemm"],
  ["fused", "ops", true, mainLoraForm, mainLoraOp],
  ["fused", "ops", false, mainLoraForm, "gemm"],
  ["fused", "gqa", true, mainLoraForm, mainLoraOp],
  ["fused", "gqa", false, mainLoraForm, "gemm"],
  ...moreLoraForms.map((f) => ["fused", mainAttention, true, f, "gemm"] as const),
  ...fusedRows,
] as const) {
  if (a === "gqa" && attention === "ops") continue;
  const c = countDecodeStepNodes(arch.value, int4, layout, {
    ...withAttention(a),
    lora,
    loraForm: form,
    loraOp,
  });
  const ops = Object.entries(c.byOp).map(([op, n]) => `${op} ${n}`);
  const what =
    (a === "gqa" ? `, GroupQueryAttention, ${kvCacheDtype} KV cache` : "") +
    (loraOp === "shrink-expand"
      ? ", shrink-expand"
      : lora && form !== mainLoraForm
        ? `, LoRA form ${form}`
        : "");
  const file = lora ? "model.onnx" : "model.base.onnx, no LoRA inputs";
  say(
    `${layout}${layout === "fused" ? ` (${file}${what})` : " (the training graph's, LoRA form gemm)"} | ${c.total} | ${c.lora} | ${ops.join(", ")}`,
  );
}

const results = new Map<string, Throughput>();
const row = (name: string, batch: number, t: Throughput) => {
  results.set(formatVersionRef(name, batch), t);
  say(`| ${name} | ${batch} | ${t.prefill.toFixed(0)} | ${t.decode.toFixed(1)} |`);
};
const load = async (dir: string, backend: OrtBackend = mainBackend) => {
  const s = await DecoderSession.load(dir, { executionProviders: [ep], backend, baseGraph, ...tf32 });
  if (!s.ok) throw s.error;
  return s.value;
};

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
// What the decoder's sessions hold: the second one over the base graph holds the weights again.
const rssBefore = process.memoryUsage().rss;
const session = await load(dirs.int4);
say(
  `\ndecoder loaded: RSS +${((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(0)} MB; base graph ${session.baseGraph.graphPath === null ? "off" : "on"} (${session.baseGraph.reason})`,
);
if (values.throughput) {
  const sayNodes = async (graphPath: string, what: string) => {
    const nodes = await graphNodes(graphPath, ep);
    say(
      `decode step graph${what} (${basename(graphPath)}): ${nodes.built} nodes as built; ${nodes.optimized ?? "?"} nodes ${nodes.note}; most frequent: ${nodes.topOps}`,
    );
  };
  say("");
  await sayNodes(session.graphPath, "");
  if (session.baseGraph.graphPath !== null) await sayNodes(session.baseGraph.graphPath, ", base requests");
  const gqa = attention === "both" ? await load(dirs.int4Gqa) : null;
  if (gqa !== null) await sayNodes(gqa.graphPath, ", GQA");
  const otherForms = new Map<LoraForm, DecoderSession>();
  for (const form of moreLoraForms) {
    const s = await load(formDir(form));
    otherForms.set(form, s);
    await sayNodes(s.graphPath, `, LoRA form ${form}`);
  }
  // `--lora-op=both`: shrink-expand sessions (the addon's, whatever `--backend` gave the others).
  const fused = loraOpFlag === "both" ? await load(dirs.int4Fused, "auto") : null;
  const gqaFused =
    loraOpFlag === "both" && attention === "both" ? await load(dirs.int4GqaFused, "auto") : null;
  if (fused !== null) {
    await sayNodes(fused.graphPath, ", shrink-expand");
    say(`shrink-expand decoder binding: ${fused.backend} (${fused.backendReason})`);
  }
  await printDecodeCopies(session, adapterFeeds(session.spec, lora), PROMPT_LEN + NEW_TOKENS, say);
  const stock = stockToo ? await load(dirs.int4, "onnxruntime-node") : null;
  say(`Qwen2.5-0.5B dims, random weights; ${ep} EP; prompt ${PROMPT_LEN}, ${NEW_TOKENS} new tokens, greedy`);
  say(
    `decoder binding: ${session.backend} (${session.backendReason})${stock === null ? "" : "; rows marked (onnxruntime-node): the stock binding"}`,
  );
  say(
    `int4 = MatMulNBits block ${blockSize}, accuracy_level ${accuracyLevel}; attention ${attention}; LoRA op ${loraOpFlag}; LoRA form ${mainLoraForm}${moreLoraForms.length > 0 ? ` (rows named by form: ${moreLoraForms.join(", ")})` : ""}`,
  );
  say(`median of ${values.rounds} rounds; in each round every variant generates once, in turn`);
  say("| variant | batch | prefill tok/s | decode tok/s |");
  say("|---|---|---|---|");

  const base = baseFeeds(session.spec);
  const merged = compare ? await load(dirs.merged) : null;
  const peer = compare ? await loadTransformersJs(dirs.tjs, transformersJsDtype(int4), ep) : null;
  const variants = new Map<string, TimedGeneration>([
    ["int4 base", engineGeneration(session, base)],
    ["int4 + LoRA r=16 ×7", engineGeneration(session, adapterFeeds(session.spec, lora))],
  ]);
  // The same rank-0 factors without the base mark (a spread drops it): the LoRA graph runs them.
  const rankZero: LoraFeeds = { ...base };
  if (baseGraphFlag === "both")
    variants.set("int4 base, rank-0 LoRA graph", engineGeneration(session, rankZero));
  if (stock !== null) {
    variants.set("int4 base (onnxruntime-node)", engineGeneration(stock, baseFeeds(stock.spec)));
    variants.set(
      "int4 + LoRA r=16 ×7 (onnxruntime-node)",
      engineGeneration(stock, adapterFeeds(stock.spec, lora)),
    );
  }
  if (merged !== null) variants.set("merged fp16 (LoRA folded in)", engineGeneration(merged, {}));
  if (peer !== null) variants.set("transformers.js int4 base", peer.generation);
  for (const [form, s] of otherForms)
    variants.set(`int4 + LoRA r=16 ×7, ${form} form`, engineGeneration(s, adapterFeeds(s.spec, lora)));
  if (gqa !== null) {
    variants.set("int4 base, GQA", engineGeneration(gqa, baseFeeds(gqa.spec)));
    variants.set("int4 + LoRA r=16 ×7, GQA", engineGeneration(gqa, adapterFeeds(gqa.spec, lora)));
  }
  // Base requests on a shrink-expand session run what the gemm one's do wherever a base graph
  // runs them (the same model.base.onnx): LoRA rows only.
  for (const [s, suffix] of [
    [fused, ""],
    [gqaFused, ", GQA"],
  ] as const)
    if (s !== null)
      variants.set(
        `int4 + LoRA r=16 ×7${suffix}, shrink-expand`,
        engineGeneration(s, adapterFeeds(s.spec, lora)),
      );
  for (const batch of [1, 8]) {
    const measured = await throughputs(variants, batch, values.rounds);
    for (const [name, t] of measured) row(name, batch, t);
  }
  await merged?.release();
  await gqa?.release();
  for (const s of otherForms.values()) await s.release();
  await fused?.release();
  await gqaFused?.release();
  await stock?.release();

  const get = (k: string) => results.get(k)?.decode ?? Number.NaN;
  const overhead = (batch: number) =>
    pct(get(`int4 base@${batch}`) / get(`int4 + LoRA r=16 ×7@${batch}`) - 1);
  say(`\nLoRA decode overhead: batch 1 ${overhead(1)}, batch 8 ${overhead(8)} (target ≤ 15% on the CPU)`);
  for (const form of moreLoraForms) {
    const v = `int4 + LoRA r=16 ×7, ${form} form`;
    const over = (batch: number) => pct(get(`int4 base@${batch}`) / get(`${v}@${batch}`) - 1);
    say(`LoRA decode overhead, ${form} form: batch 1 ${over(1)}, batch 8 ${over(8)}`);
  }
  // Against the same base rows as the gemm LoRA rows they sit beside.
  for (const suffix of ["", ", GQA"]) {
    const v = `int4 + LoRA r=16 ×7${suffix}, shrink-expand`;
    if (!results.has(`${v}@1`)) continue;
    const over = (batch: number) => pct(get(`int4 base${suffix}@${batch}`) / get(`${v}@${batch}`) - 1);
    say(`LoRA decode overhead${suffix}, shrink-expand: batch 1 ${over(1)}, batch 8 ${over(8)}`);
  }
  if (baseGraphFlag === "both") {
    const gain = (batch: number) => {
      const x = get(`int4 base@${batch}`) / get(`int4 base, rank-0 LoRA graph@${batch}`) - 1;
      return `${x >= 0 ? "+" : ""}${pct(x)}`;
    };
    say(`base decode, base graph vs the rank-0 LoRA graph: batch 1 ${gain(1)}, batch 8 ${gain(8)}`);
  }
  if (stock !== null) {
    const vs = (v: string, batch: number) =>
      (get(`${v}@${batch}`) / get(`${v} (onnxruntime-node)@${batch}`)).toFixed(2);
    say(
      `${session.backend} / onnxruntime-node decode: base ${vs("int4 base", 1)}× (batch 1), ${vs("int4 base", 8)}× (batch 8); LoRA ${vs("int4 + LoRA r=16 ×7", 1)}× (batch 1), ${vs("int4 + LoRA r=16 ×7", 8)}× (batch 8)`,
    );
  }
  if (peer !== null) {
    const oursGreedy = await greedyTokens(session, base, 16);
    const peerGreedy = await peer.greedy(16);
    await peer.release();
    const peer1 = get("transformers.js int4 base@1");
    say(
      `decode at batch 1 / transformers.js (base) at batch 1: ours base ${(get("int4 base@1") / peer1).toFixed(2)}×, ours + LoRA ${(get("int4 + LoRA r=16 ×7@1") / peer1).toFixed(2)}× (target ≥ 1)`,
    );
    say(
      `aggregate decode at batch 8 / batch 1: base ${(get("int4 base@8") / get("int4 base@1")).toFixed(2)}×, LoRA ${(get("int4 + LoRA r=16 ×7@8") / get("int4 + LoRA r=16 ×7@1")).toFixed(2)}×, transformers.js ${(get("transformers.js int4 base@8") / peer1).toFixed(2)}× (target ≥ 3×)`,
    );
    say(
      `greedy continuation of prompt 0 (16 tokens), ours vs transformers.js on the same weights: ${oursGreedy.join() === peerGreedy.join() ? "identical" : `differ\n  ours ${oursGreedy}\n  peer ${peerGreedy}`}`,
    );
  }
}

const profileSteps = values.profile;
if (profileSteps > 0) {
  const p = await profileDecode(dirs.int4, ep, (s) => adapterFeeds(s.spec, lora), profileSteps, values.work);
  say(`\nORT profile on ${ep}:`);
  for (const line of formatProfile(p)) say(line);
}

if (swaps > 0) {
  say(
    `\n${swaps} swaps (stage, activate on webhook event, serve one request), LoRA r=16 ×7, cache bound 4 versions`,
  );
  const payloads = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) =>
    randomAdapter(configPath, 100 + seed, 16, ALL_SEVEN, 0.02),
  );
  const report = await measureSwaps(
    session,
    session.spec,
    payloads,
    swaps,
    Math.max(1, Math.floor(swaps / 10)),
  );
  const { p50, p99, max } = report.activationMs;
  say(
    `activation of a staged version: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, max ${max.toFixed(3)} ms (target < 1 ms)`,
  );
  say(`sessions created during the swaps: ${report.sessionsCreated} (target 0)`);
  say(`RSS after a collection, MB: ${report.rss.map(([v, mb]) => `${v}: ${mb.toFixed(0)}`).join(", ")}`);
  const first = report.rss[0]?.[1] ?? 0;
  const last = report.rss.at(-1)?.[1] ?? 0;
  say(
    `RSS change from swap ${report.rss[0]?.[0]} to ${report.rss.at(-1)?.[0]}: ${(last - first).toFixed(0)} MB (${pct(last / first - 1)})`,
  );
}
await session.release();
