/**
 * npm run bench:engine: prefill and decode throughput of the engine on a model with Qwen2.5-0.5B's
 * dimensions at int4, base only vs base + LoRA r=16 on all seven projections, in one process.
 * Peers (merged fp16, transformers.js) are not measured yet. The weights are seeded random (no real
 * weights can be downloaded here).
 */
import { join } from "node:path";
import { buildArtifacts, readModelManifest, writeRandomCheckpoint } from "@loracast/shared/model-builder";
import { peftKey } from "@loracast/shared/model-spec";
import { createRng } from "@loracast/shared/random";
import { baseFeeds, DecoderSession, Engine, GREEDY, type LoraFeeds } from "@loracast/shared/runtime";
import { ROOT } from "@loracast/shared/supervisor";
import * as ort from "onnxruntime-node";
import { QWEN25_05B } from "./configs.ts";

const work = join(ROOT, ".bench", "engine");
const checkpoint = join(work, "qwen25-05b-random");
const accuracyLevel = process.argv.includes("--accuracy-level=4") ? 4 : 0;
const modelDir = join(work, `qwen25-05b-int4-acc${accuracyLevel}`);
const say = (s: string) => process.stdout.write(`${s}\n`);

let t = performance.now();
await writeRandomCheckpoint(checkpoint, QWEN25_05B, 1);
say(`checkpoint ready in ${((performance.now() - t) / 1000).toFixed(1)} s`);
if (!(await readModelManifest(modelDir)).ok) {
  t = performance.now();
  const built = await buildArtifacts({
    checkpointDir: checkpoint,
    outDir: modelDir,
    quant: { kind: "nbits", bits: 4, blockSize: 32, emulate: false, accuracyLevel },
  });
  if (!built.ok) throw built.error;
  say(`int4 artifacts built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
const loaded = await DecoderSession.load(modelDir);
if (!loaded.ok) throw loaded.error;
const session = loaded.value;
const spec = session.spec;

const rng = createRng(7);
const lora: Record<string, ort.Tensor> = { ...baseFeeds(spec) };
for (const m of spec.modules.values()) {
  const r = 16;
  lora[peftKey(m.name, "A")] = new ort.Tensor(
    "float32",
    Float32Array.from({ length: r * m.inFeatures }, () => (rng.next() - 0.5) * 0.02),
    [r, m.inFeatures],
  );
  lora[peftKey(m.name, "B")] = new ort.Tensor(
    "float32",
    Float32Array.from({ length: m.outFeatures * r }, () => (rng.next() - 0.5) * 0.02),
    [m.outFeatures, r],
  );
}
const variants: [string, LoraFeeds][] = [
  ["base", baseFeeds(spec)],
  ["lora r=16 ×7", Object.freeze(lora)],
];

const promptLen = 128;
const decodeTokens = 64;
const prompt = (i: number) =>
  Array.from({ length: promptLen }, (_, j) => 1000 + ((i * 7919 + j * 104729) % 100000));

async function run(feeds: LoraFeeds, batch: number): Promise<{ prefill: number; decode: number }> {
  const engine = new Engine(session, { maxBatch: batch });
  let firstTokenAt = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: batch }, (_, i) =>
      engine.generate({
        prompt: prompt(i),
        adapter: { key: "k", feeds },
        sampling: GREEDY,
        maxTokens: decodeTokens,
        stopTokens: new Set(),
        topLogprobs: 0,
        rng: createRng(i),
        onToken: () => {
          if (firstTokenAt === 0) firstTokenAt = performance.now();
        },
      }),
    ),
  );
  const end = performance.now();
  return {
    prefill: (batch * promptLen) / ((firstTokenAt - t0) / 1000),
    decode: (batch * (decodeTokens - 1)) / ((end - firstTokenAt) / 1000),
  };
}

say(
  `\nmodel: Qwen2.5-0.5B dims, int4 b32 (accuracy_level ${accuracyLevel}), CPU EP; prompt ${promptLen}, ${decodeTokens} new tokens`,
);
say("| variant | batch | prefill tok/s | decode tok/s |");
say("|---|---|---|---|");
const results: Record<string, number> = {};
for (const batch of [1, 8]) {
  for (const [name, feeds] of variants) {
    await run(feeds, batch); // warm-up
    const r = await run(feeds, batch);
    results[`${name}@${batch}`] = r.decode;
    say(`| ${name} | ${batch} | ${r.prefill.toFixed(0)} | ${r.decode.toFixed(1)} |`);
  }
}
const overhead =
  (results["lora r=16 ×7@1"] ?? 0) > 0
    ? (results["base@1"] ?? 0) / (results["lora r=16 ×7@1"] ?? 1) - 1
    : Number.NaN;
say(`\nLoRA decode overhead at batch 1: ${(overhead * 100).toFixed(1)}% (target ≤ 15%)`);
say(
  `batch 8 / batch 1 aggregate decode (LoRA): ${((results["lora r=16 ×7@8"] ?? 0) / (results["lora r=16 ×7@1"] ?? 1)).toFixed(2)}× (target ≥ 3×)`,
);
await session.release();
