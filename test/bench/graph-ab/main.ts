/**
 * npm run bench:graph-ab -- --old=<dir> --new=<dir> [--rounds=7 --tokens=32 --batches=1,8]
 *
 * The per-module decoder graph (artifacts built by a builder before the fused layout, e.g. from a
 * `git archive e75acd9` checkout) against the fused one, on the same checkpoint (the engine bench's
 * `.bench/engine/qwen25-05b-random`), in one process, the variants in turns: base, LoRA r=16 on all
 * seven projections, and the fused graph built without LoRA inputs (a second session). The figure
 * is CPU time per decode step (`process.cpuUsage()`, all threads, one intra-op thread so that no
 * thread spins), which other processes on a shared machine inflate far less than wall time.
 */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PROJECTIONS } from "@loracast/shared/architectures";
import { buildArtifacts } from "@loracast/shared/model-builder";
import { loadModelSpec, PACKED_MODULES, verifyAdapterFiles } from "@loracast/shared/model-spec";
import { parseCommandLine } from "@loracast/shared/platform";
import { adapterFeeds, baseFeeds, DecoderSession, type LoraFeeds } from "@loracast/shared/runtime";
import { randomAdapter } from "../../helpers/adapters.ts";
import { generateBatch } from "../engine/ours.ts";

const { values } = parseCommandLine({
  usage: "npm run bench:graph-ab -- --old=<dir> --new=<dir> [flags]",
  about:
    "CPU time per decode step of the per-module decoder graph (--old: artifacts of a builder before the fused layout) against the fused one (--new), same checkpoint, in one process, variants in turns. Reads no environment variables.",
  flags: {
    old: { type: "string", default: "", help: "artifacts built by the per-module builder (schema 1)" },
    new: { type: "string", default: "", help: "artifacts built by this builder (the fused graph)" },
    checkpoint: {
      type: "string",
      default: ".bench/engine/qwen25-05b-random",
      help: "the checkpoint both were built from (its config.json shapes the adapter)",
    },
    rounds: { type: "string", default: "7", help: "rounds; each runs every variant once" },
    tokens: { type: "string", default: "32", help: "new tokens per generation" },
    batches: { type: "string", default: "1,8", help: "batch sizes, comma-separated" },
  },
});
const say = (s: string) => process.stdout.write(`${s}\n`);
const [oldDir, newDir] = [resolve(values.old), resolve(values.new)];
const configPath = join(resolve(values.checkpoint), "config.json");

// The old artifacts as this runtime reads them: a schema-2 manifest with an empty module map, so
// the session feeds the per-module LoRA inputs as given. The graphs stay where they are (ORT
// refuses external data outside the model's own folder).
const oldView = `${oldDir}.as-schema-2`;
if (!existsSync(oldView)) {
  mkdirSync(oldView);
  for (const f of ["model.onnx", "model.append.onnx", "model.onnx.data"])
    symlinkSync(join(oldDir, f), join(oldView, f));
  const m = JSON.parse(readFileSync(join(oldDir, "loracast-model.json"), "utf8"));
  const decoder = { layout: "fused", packedModules: PACKED_MODULES };
  writeFileSync(
    join(oldView, "loracast-model.json"),
    JSON.stringify({ ...m, schema: "loracast-model/2", modules: [], decoder }),
  );
}
// The fused graph without LoRA inputs: merging no adapter builds it.
const noLoraDir = `${newDir}.no-lora`;
if (!existsSync(join(noLoraDir, "loracast-model.json"))) {
  const built = await buildArtifacts({
    checkpointDir: resolve(values.checkpoint),
    outDir: noLoraDir,
    quant: { kind: "nbits", bits: 4, blockSize: 32, emulate: false, accuracyLevel: 4 },
    merge: { modules: [], maxRank: 0 },
  });
  if (!built.ok) throw built.error;
}

const spec = await loadModelSpec(configPath);
if (!spec.ok) throw spec.error;
const files = randomAdapter(
  configPath,
  7,
  16,
  PROJECTIONS.map((p) => p.name),
  0.02,
);
const checked = verifyAdapterFiles(spec.value, new TextDecoder().decode(files.config), files.weights);
if (!checked.ok) throw new Error(checked.error);
const lora = adapterFeeds(spec.value, checked.value.verified);
const base = baseFeeds(spec.value);

const rssMb = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 2 ** 20;
};
const load = async (dir: string) => {
  const before = rssMb();
  const s = await DecoderSession.load(dir, { intraOpThreads: 1 });
  if (!s.ok) throw s.error;
  say(`${dir}: +${(rssMb() - before).toFixed(0)} MB RSS after loading`);
  return s.value;
};
const [oldS, newS, noLoraS] = [await load(oldView), await load(newDir), await load(noLoraDir)];
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** CPU ms of the prefill and per decode step of one greedy generation of `n` tokens per row. */
async function generation(session: DecoderSession, feeds: LoraFeeds, batch: number, n: number) {
  let first = 0;
  const start = cpuMs();
  await generateBatch(session, feeds, batch, n, () => {
    first ||= cpuMs();
  });
  return { prefill: first - start, step: (cpuMs() - first) / (n - 1) };
}

const variants: [string, DecoderSession, LoraFeeds][] = [
  ["per-module, base (rank-0 LoRA)", oldS, base],
  ["per-module, LoRA r=16 ×7", oldS, lora],
  ["fused, base (rank-0 packed pairs)", newS, base],
  ["fused, LoRA r=16 ×7", newS, lora],
  ["fused, graph without LoRA inputs", noLoraS, {}],
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const rounds = Number(values.rounds);
const tokens = Number(values.tokens);
for (const batch of values.batches.split(",").map(Number)) {
  for (const [, s, f] of variants) await generation(s, f, batch, 4); // warm-up
  const runs = new Map(variants.map(([k]) => [k, [] as { prefill: number; step: number }[]]));
  for (let r = 0; r < rounds; r++)
    for (const [k, s, f] of variants) runs.get(k)?.push(await generation(s, f, batch, tokens));
  say(
    `\nbatch ${batch}, median of ${rounds} rounds | variant | CPU ms per decode step | all rounds | prefill CPU ms`,
  );
  for (const [k, rs] of runs) {
    const steps = rs.map((x) => x.step);
    const all = [...steps].sort((a, b) => a - b).map((x) => x.toFixed(1));
    say(
      `| ${k} | ${median(steps).toFixed(1)} | ${all.join(" ")} | ${median(rs.map((x) => x.prefill)).toFixed(0)} |`,
    );
  }
}
for (const s of [oldS, newS, noLoraS]) await s.release();
