/**
 * node --import tsx test/bench/gpu/node-count.ts <model-dir> [cpu|webgpu|cuda] [batch] [past]
 *
 * How many nodes one decode step runs: ORT's profiler (`enableProfiling`) records one
 * `*_kernel_time` event per node it executes, after its graph optimizations, on the given EP. Runs one
 * decode step (one new token per row over a past of `past` columns, the base's rank-0 LoRA factors)
 * on each decoder graph of the artifacts (`model.onnx`, and `model.append.onnx` where built), and
 * prints a JSON line per graph: nodes per step, and those per op type. Per-node dispatch is what
 * GPU decode costs from Node (docs/architecture.md), so this is the figure the attention work cuts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IO, readModelManifest } from "@loracast/shared/model-format";
import { baseFeeds, executionProviderSchema } from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";

const [dir, epArg = "cpu", batchArg = "1", pastArg = "32"] = process.argv.slice(2);
if (dir === undefined) throw new Error("usage: node-count.ts <model-dir> [cpu|webgpu|cuda] [batch] [past]");
const ep = executionProviderSchema.parse(epArg);
const [batch, past] = [Number(batchArg), Number(pastArg)];
if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(past) && past > 0))
  throw new RangeError("batch and past must be positive integers");
const read = await readModelManifest(dir);
if (!read.ok) throw read.error;
const { manifest, spec } = read.value;
const { numLayers, numKvHeads, headDim } = manifest.dims;
const gqa = manifest.attention === "gqa";

const i64 = (n: number, v: number, dims: number[]) =>
  new ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(v)), dims);
const feeds: Record<string, ort.Tensor> = {
  ...baseFeeds(spec),
  [IO.inputIds]: i64(batch, 1, [batch, 1]),
  [IO.logitsPositions]: i64(batch, 0, [batch, 1]),
  ...(gqa
    ? {
        [IO.seqlensK]: new ort.Tensor("int32", new Int32Array(batch).fill(past), [batch]),
        [IO.totalSequenceLength]: new ort.Tensor("int32", Int32Array.of(past + 1), []),
      }
    : {
        [IO.attentionMask]: i64(batch * (past + 1), 1, [batch, past + 1]),
        [IO.positionIds]: i64(batch, past, [batch, 1]),
      }),
};
const cache = () =>
  new ort.Tensor("float32", new Float32Array(batch * numKvHeads * past * headDim), [
    batch,
    numKvHeads,
    past,
    headDim,
  ]);
for (let l = 0; l < numLayers; l++) {
  feeds[IO.pastKey(l)] = cache();
  feeds[IO.pastValue(l)] = cache();
}

const work = mkdtempSync(join(tmpdir(), "loracast-node-count-"));
try {
  for (const file of [manifest.files.model, manifest.files.append]) {
    if (file === undefined) continue;
    const prefix = join(work, file);
    const session = await ort.InferenceSession.create(join(dir, file), {
      executionProviders: [ep],
      graphOptimizationLevel: "all",
      enableProfiling: true,
      profileFilePrefix: prefix,
    });
    await session.run(feeds);
    session.endProfiling();
    await session.release();
    const trace = readdirSync(work).find((f) => f.startsWith(file) && f.endsWith(".json"));
    if (trace === undefined) throw new Error(`no profile of ${file} in ${work}`);
    const events = JSON.parse(readFileSync(join(work, trace), "utf8")) as {
      cat?: string;
      name?: string;
      args?: { op_name?: string };
    }[];
    const nodes = events.filter((e) => e.cat === "Node" && e.name?.endsWith("_kernel_time"));
    const byOp: Record<string, number> = {};
    for (const e of nodes) byOp[e.args?.op_name ?? "?"] = (byOp[e.args?.op_name ?? "?"] ?? 0) + 1;
    rmSync(join(work, trace), { force: true });
    console.log(
      JSON.stringify({
        file,
        attention: manifest.attention ?? "ops",
        ep,
        batch,
        past,
        nodesPerStep: nodes.length,
        byOp,
      }),
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
