/**
 * Batching on the GPU gives each request what it gets alone. Run on the GPU host after prepare.sh:
 * `node .carry/batching-check.mjs .carry/tiny webgpu [model] [backend] [base-graph]` (or `cpu` here); `model` is
 * the artifacts folder under the tiny dir, `model` (ops attention) by default, `model-gqa`
 * (GroupQueryAttention, whose caches are right-padded), `model-gqa16` (the same over a float16
 * cache, CUDA's form), `model-gqa16-se` (that with one fused `LoraShrinkExpand` node per LoRA pair,
 * which only the ort-native addon runs) or `model-splitk-t` (ops, WebGPU's LoRA form); `backend` the
 * decoder's ORT binding, `auto`
 * by default (ort-native on cuda where it loads), `ort-native` or `onnxruntime-node`; every line
 * names the EP and the binding that ran. Requests join a running
 * batch and leave it early, so caches are merged and dropped (the GPU-to-host path), with the base
 * alone and with the llama-tiny fixture's PEFT adapter; the greedy tokens of each request must
 * equal `greedyDecode` of it alone. The base requests run the decoder graph without LoRA inputs
 * where the session has one (`base-graph`, the session's `baseGraph`: `auto` by default, on for cuda
 * and webgpu; `on` or `off`), which the check verifies by the per-graph step counts. Exits 1 on any difference.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { verifyAdapterFiles } from "@loracast/shared/model-spec";
import { createRng } from "@loracast/shared/random";
import {
  adapterFeeds,
  baseFeeds,
  baseGraphSchema,
  DecoderSession,
  Engine,
  executionProviderSchema,
  GREEDY,
  greedyDecode,
  type LoraFeeds,
  ortBackendSchema,
} from "@loracast/shared/runtime";

const [tiny = ".carry/tiny", ep = "webgpu", model = "model", asked = "auto", baseGraph = "auto"] =
  process.argv.slice(2);
const loaded = await DecoderSession.load(join(tiny, model), {
  // Anything but a known provider runs on WebGPU, the point of this check.
  executionProviders: [executionProviderSchema.catch("webgpu").parse(ep)],
  backend: ortBackendSchema.parse(asked),
  baseGraph: baseGraphSchema.parse(baseGraph),
});
if (!loaded.ok) throw loaded.error;
const session = loaded.value;
const where = `${ep}/${session.backend}`;
const checked = verifyAdapterFiles(
  session.spec,
  readFileSync(join(tiny, "adapter", "adapter_config.json"), "utf8"),
  new Uint8Array(readFileSync(join(tiny, "adapter", "adapter_model.safetensors"))),
);
if (!checked.ok) throw new Error(checked.error);

const vocab = session.manifest.dims.vocabSize;
const prompts = [5, 17, 9, 30, 12].map((n, i) =>
  Array.from({ length: n }, (_, j) => 3 + ((i * 7919 + j * 104729) % (vocab - 3))),
);
// Request 1 stops early (it leaves a running batch); requests 2.. arrive once 0 and 1 are decoding.
const maxTokens = (i: number) => (i === 1 ? 6 : 10);
let differ = 0;
const variants: [string, LoraFeeds][] = [
  ["base", baseFeeds(session.spec)],
  ["lora", adapterFeeds(session.spec, checked.value.verified)],
];
for (const [name, feeds] of variants) {
  const alone: number[][] = [];
  for (const [i, p] of prompts.entries()) alone.push(await greedyDecode(session, feeds, p, maxTokens(i)));
  const engine = new Engine(session, { maxBatch: 8 });
  const generate = (i: number) =>
    engine.generate({
      prompt: prompts[i] ?? [],
      adapter: { key: name, feeds },
      sampling: GREEDY,
      maxTokens: maxTokens(i),
      stopTokens: new Set(),
      logprobs: null,
      rng: createRng(i),
    });
  const first = [generate(0), generate(1)];
  await new Promise((r) => setTimeout(r, 30));
  const results = await Promise.all([...first, ...prompts.slice(2).map((_, k) => generate(k + 2))]);
  results.forEach((r, i) => {
    const got = r.tokens.map((t) => t.token).join();
    const want = (alone[i] ?? []).join();
    if (got !== want) differ++;
    console.log(
      `${where} ${name} request ${i}: ${got === want ? "same as alone" : `DIFFERS\n  batched ${got}\n  alone   ${want}`}`,
    );
  });
  console.log(`${name}: engine stats ${JSON.stringify(engine.stats)}`);
}
const steps = session.stepCounts();
// Every base step ran the base graph where there is one, and only the adapter's ran the LoRA graph.
const routed = session.baseGraph.graphPath === null ? steps.base === 0 : steps.base > 0;
if (!routed) differ++;
console.log(
  `base graph ${session.baseGraph.graphPath === null ? "off" : "on"} (${session.baseGraph.reason}): steps per graph ${JSON.stringify(steps)}${routed ? "" : " WRONG GRAPH"}`,
);
await session.release();
const { attention = "ops", kvCacheDtype = "float32" } = session.manifest.decoder;
console.log(
  `${model} (${attention} attention, ${kvCacheDtype} KV cache) on ${where} (${session.backendReason})`,
);
console.log(differ === 0 ? "all requests: same tokens batched as alone" : `${differ} requests differ`);
process.exitCode = differ === 0 ? 0 : 1;
