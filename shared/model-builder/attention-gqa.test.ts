import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { IO, type KvCacheDtype, MODEL_MANIFEST, readModelManifest } from "../model-format/index.ts";
import { GraphBuilder, type GraphValue } from "../onnx/index.ts";
import { buildDecoderGraph, type KvOutput } from "./decoder-graph.ts";
import { buildArtifacts, countDecodeStepNodes, parseArchitecture } from "./index.ts";
import { WeightPlan } from "./weights.ts";

const LLAMA = join(fixture("llama-tiny"), "base");
const parsed = parseArchitecture(JSON.parse(readFileSync(join(LLAMA, "config.json"), "utf8")));
assert.ok(parsed.ok);
const arch = parsed.value;
const layers = arch.dims.numLayers;

/** The fused int4 GQA decoder as `buildArtifacts` builds it, with the cache in `dtype`. */
function gqaGraph(kvCacheDtype: KvCacheDtype, kvOutput: KvOutput = "present"): GraphValue {
  const g = new GraphBuilder("t");
  const quant = { kind: "nbits", bits: 4, blockSize: 32, emulate: false } as const;
  buildDecoderGraph(g, arch, new WeightPlan(g, quant, "data"), {
    attention: "gqa",
    kvCacheDtype,
    kvOutput,
  });
  return g.build();
}

const typeOf = (values: GraphValue["inputs"], name: string) => values.find((v) => v.name === name)?.type;

describe("GroupQueryAttention over a float16 KV cache (the CUDA build)", () => {
  it("takes and returns the cache in float16; logits, LoRA factors and weights stay float32", () => {
    const g = gqaGraph("float16");
    for (let l = 0; l < layers; l++) {
      assert.equal(typeOf(g.inputs, IO.pastKey(l)), "float16");
      assert.equal(typeOf(g.inputs, IO.pastValue(l)), "float16");
      assert.equal(typeOf(g.outputs, IO.presentKey(l)), "float16");
      assert.equal(typeOf(g.outputs, IO.presentValue(l)), "float16");
    }
    assert.equal(typeOf(g.outputs, IO.logits), "float32");
    const factors = g.inputs.filter((i) => i.name.startsWith("base_model."));
    assert.ok(factors.length > 0 && factors.every((i) => i.type === "float32"));
    assert.ok(
      g.initializers.every((t) => t.type !== "float16"),
      "no weight is stored in float16",
    );
  });

  it("the append graph returns the new keys and values in float16", () => {
    const g = gqaGraph("float16", "append");
    assert.equal(typeOf(g.outputs, IO.appendedKey(0)), "float16");
    assert.equal(typeOf(g.outputs, IO.appendedValue(layers - 1)), "float16");
  });

  it("feeds every GroupQueryAttention input but the int32 lengths from a Cast to float16", () => {
    const g = gqaGraph("float16");
    const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    const gqa = g.nodes.filter((n) => n.opType === "GroupQueryAttention");
    assert.equal(gqa.length, layers);
    for (const node of gqa) {
      // query (packed qkv: key and value absent), past key/value, seqlens_k, total, cos, sin.
      const [query, key, value, , , , , cos, sin] = node.inputs;
      assert.deepEqual([key, value], ["", ""], "the fused layout feeds packed QKV");
      for (const name of [query, cos, sin]) {
        let at = producer.get(name ?? "");
        // The query is reshaped to 3-D after its Cast.
        if (at?.opType === "Reshape") at = producer.get(at.inputs[0] ?? "");
        assert.equal(at?.opType, "Cast", `${node.name}: ${name}`);
        assert.equal(at?.attributes.to?.kind === "int" ? at.attributes.to.value : null, 10, "to float16");
      }
    }
  });

  it("costs 2 Casts per layer and 2 for the rotary tables over the float32 cache's graph", () => {
    const count = (g: GraphValue, op?: string) =>
      g.nodes.filter((n) => op === undefined || n.opType === op).length;
    const f32 = gqaGraph("float32");
    const f16 = gqaGraph("float16");
    assert.equal(count(f16) - count(f32), 2 * layers + 2);
    assert.equal(count(f16, "Cast") - count(f32, "Cast"), 2 * layers + 2);
  });

  it("counts its decode step's nodes (countDecodeStepNodes) as the built graph has them", () => {
    const int4 = { kind: "nbits", bits: 4, blockSize: 32, emulate: false } as const;
    const ops = countDecodeStepNodes(arch, int4, "fused");
    const gqa16 = countDecodeStepNodes(arch, int4, "fused", { attention: "gqa", kvCacheDtype: "float16" });
    assert.equal(gqa16.total, gqaGraph("float16").nodes.length);
    assert.equal(gqa16.byOp.GroupQueryAttention, layers);
    assert.ok(gqa16.total < ops.total, `${gqa16.total} nodes against ${ops.total} with ops attention`);
  });

  it("is refused for the ops attention, which has no float16 form", () => {
    const g = new GraphBuilder("t");
    assert.throws(
      () =>
        buildDecoderGraph(g, arch, new WeightPlan(g, { kind: "fp32" }, "data"), {
          kvCacheDtype: "float16",
        }),
      /float16 KV cache needs GroupQueryAttention/,
    );
  });

  it("records the cache dtype in the manifest, and a manifest pairing float16 with ops is refused", async () => {
    const work = mkdtempSync(join(tmpdir(), "loracast-gqa16-"));
    try {
      const built = await buildArtifacts({
        checkpointDir: LLAMA,
        outDir: work,
        quant: { kind: "fp32" },
        attention: "gqa",
        kvCacheDtype: "float16",
      });
      assert.ok(built.ok);
      const read = await readModelManifest(work);
      assert.ok(read.ok);
      assert.equal(read.value.manifest.decoder.kvCacheDtype, "float16");
      assert.equal(read.value.manifest.decoder.attention, "gqa");
      await assert.rejects(
        buildArtifacts({
          checkpointDir: LLAMA,
          outDir: work,
          quant: { kind: "fp32" },
          kvCacheDtype: "float16",
        }),
        /KV cache is built with attention gqa only/,
      );
      const path = join(work, MODEL_MANIFEST);
      const manifest = JSON.parse(readFileSync(path, "utf8"));
      delete manifest.decoder.attention;
      writeFileSync(path, JSON.stringify(manifest));
      const refused = await readModelManifest(work);
      assert.ok(!refused.ok);
      assert.match(refused.error.message, /decoder\.kvCacheDtype: a float16 KV cache needs attention gqa/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("the GQA decoder's constant rotary tables", () => {
  it("equal the ops decoder's rotaryTables, computed by ORT's CPU kernels, for every position", async () => {
    const ort = await import("onnxruntime-node");
    // ORT's telemetry files would otherwise be left in the test's TMPDIR (test/run.ts fails on them).
    const { disableOrtTelemetry } = await import("../runtime/index.ts");
    disableOrtTelemetry();
    const { encodeModel } = await import("../onnx/index.ts");
    const { rotaryTables } = await import("./attention.ts");
    const { rotaryTable } = await import("./attention-gqa.ts");
    const rows = 512;
    const g = new GraphBuilder("rope");
    const positions = g.input("positions", "float32", [rows, 1]);
    const { cos, sin } = rotaryTables(g, arch, positions);
    g.op("Identity", [cos], {}, { names: ["cos"] });
    g.op("Identity", [sin], {}, { names: ["sin"] });
    g.output("cos", "float32", [rows, arch.dims.headDim / 2]);
    g.output("sin", "float32", [rows, arch.dims.headDim / 2]);
    const session = await ort.InferenceSession.create(
      encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "test" }),
    );
    const feed = new ort.Tensor(
      "float32",
      Float32Array.from({ length: rows }, (_, p) => p),
      [rows, 1],
    );
    const out = await session.run({ positions: feed });
    for (const [name, f] of [
      ["cos", Math.cos],
      ["sin", Math.sin],
    ] as const) {
      const graph = out[name]?.data as Float32Array;
      const table = rotaryTable(arch, rows, f);
      assert.equal(table.length, graph.length);
      let worst = 0;
      for (let i = 0; i < table.length; i++)
        worst = Math.max(worst, Math.abs((table[i] ?? 0) - (graph[i] ?? 0)));
      // ORT's float cos/sin against a correctly rounded one: a few float32 ulps at most.
      assert.ok(worst <= 1e-6, `${name}: worst |difference| ${worst}`);
    }
    await session.release();
  });
});
