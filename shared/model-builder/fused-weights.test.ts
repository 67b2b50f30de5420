import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { GraphBuilder } from "../onnx/index.ts";
import { createRng } from "../random/index.ts";
import { buildDecoderGraph } from "./decoder-graph.ts";
import { countDecodeStepNodes, parseArchitecture } from "./index.ts";
import { type BaseQuant, WeightPlan } from "./weights.ts";

const QUANTS: [string, BaseQuant][] = [
  ["fp32", { kind: "fp32" }],
  ["fp16", { kind: "fp16" }],
  ["int4 b32", { kind: "nbits", bits: 4, blockSize: 32, emulate: false }],
  ["int8 b32", { kind: "nbits", bits: 8, blockSize: 32, emulate: false }],
  ["int4 b32 dequantized", { kind: "nbits", bits: 4, blockSize: 32, emulate: true }],
];

const random = (seed: number, n: number) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
};

/** Runs a plan's jobs over `sources` into one data file, as `buildArtifacts` does. */
function write(plan: WeightPlan, sources: Map<string, Float32Array>): Uint8Array {
  const file = new Uint8Array(plan.size);
  for (const job of plan.jobs) {
    let at = job.offset;
    for (const part of job.produce(job.sources.map((s) => sources.get(s.name) ?? new Float32Array(0)))) {
      file.set(part, at);
      at += part.byteLength;
    }
    assert.equal(at, job.offset + job.length);
  }
  return file;
}

/** Each initializer of a graph with the bytes it reads from `file`, by name. */
function initializerBytes(g: GraphBuilder, file: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const t of g.build().initializers) {
    if (!("external" in t.data)) continue;
    const { offset, length } = t.data.external;
    out.set(t.name, file.subarray(offset, offset + length));
  }
  return out;
}

describe("fused weights", () => {
  // q 5 rows, k and v 3 rows, k = 40 input features: not a multiple of the block (a padded block).
  const K = 40;
  const parts = [
    { source: "q.weight", rows: 5 },
    { source: "k.weight", rows: 3 },
    { source: "v.weight", rows: 3 },
  ];
  const sources = new Map(parts.map((p, i) => [p.source, random(i + 1, p.rows * K)]));

  for (const [name, quant] of QUANTS) {
    it(`${name}: each projection's rows of the fused weight are the bytes it has stored alone`, () => {
      const g = new GraphBuilder("fused");
      const plan = new WeightPlan(g, quant, "data");
      plan.fusedMatrix("qkv.weight", parts, K);
      assert.equal(plan.jobs.length, 1, "one job writes the fused weight");
      const file = write(plan, sources);

      // A graph over the fused file reading each projection alone (the per-module training graph).
      const gv = new GraphBuilder("view");
      const view = new WeightPlan(gv, quant, "data", plan);
      for (const p of parts) view.matrix(p.source, p.rows, K);
      assert.equal(view.jobs.length, 0, "a plan over another writes nothing");
      const viewed = initializerBytes(gv, file);

      for (const p of parts) {
        const ga = new GraphBuilder("alone");
        const alone = new WeightPlan(ga, quant, "data");
        alone.matrix(p.source, p.rows, K);
        const own = initializerBytes(ga, write(alone, sources));
        assert.ok(own.size > 0);
        for (const [init, bytes] of own) assert.deepEqual(viewed.get(init), bytes, `${p.source}: ${init}`);
      }
    });
  }

  it("concatenates biases, each readable alone", () => {
    const g = new GraphBuilder("bias");
    const plan = new WeightPlan(g, { kind: "fp32" }, "data");
    const biases = parts.map((p, i) => ({ source: p.source.replace("weight", "bias"), rows: p.rows, i }));
    const values = new Map(biases.map((b) => [b.source, random(10 + b.i, b.rows)]));
    plan.fusedVector("qkv.bias", biases);
    const file = write(plan, values);
    const gv = new GraphBuilder("view");
    const view = new WeightPlan(gv, { kind: "fp32" }, "data", plan);
    for (const b of biases) view.vector(b.source, [b.rows]);
    const viewed = initializerBytes(gv, file);
    for (const b of biases) {
      const v = values.get(b.source) ?? new Float32Array(0);
      assert.deepEqual(viewed.get(b.source), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
  });

  it("a plan over another refuses a weight it did not store, or stored in another shape", () => {
    const g = new GraphBuilder("fused");
    const plan = new WeightPlan(g, { kind: "fp32" }, "data");
    plan.fusedMatrix("qkv.weight", parts, K);
    const view = new WeightPlan(new GraphBuilder("view"), { kind: "fp32" }, "data", plan);
    assert.throws(
      () => view.matrix("o.weight", 5, K),
      /weight o\.weight is not stored as this graph reads it/,
    );
    assert.throws(() => view.matrix("q.weight", 4, K), /weight q\.weight is not stored/);
  });
});

describe("fused decoder graph", () => {
  const config = JSON.parse(readFileSync(join(fixture("llama-tiny"), "base", "config.json"), "utf8"));
  const arch = parseArchitecture(config);
  assert.ok(arch.ok);
  const L = arch.value.dims.numLayers;
  const int4: BaseQuant = { kind: "nbits", bits: 4, blockSize: 32, emulate: false };

  it("has one projection and one LoRA pair per packed module, and a skip norm per residual add", () => {
    const c = countDecodeStepNodes(arch.value, int4, "fused");
    assert.equal(c.byOp.MatMulNBits, 4 * L + 1, "qkv, o, gate_up, down per layer, and the LM head");
    assert.equal(c.lora, 8 * L);
    assert.equal(c.byOp.Gemm, 8 * L, "only the LoRA branches are Gemm");
    assert.equal(c.byOp.SkipSimplifiedLayerNormalization, 2 * L);
    assert.equal(c.byOp.SimplifiedLayerNormalization, 1, "the first layer's input norm");
    assert.equal(c.byOp.Split, 2 * L, "q/k/v for the attention, gate/up for SwiGLU");
    // Llama has no biases: the only Adds left are the attention masks.
    assert.equal(c.byOp.Add, L);
  });

  it("costs fewer nodes than the per-module graph: 6 LoRA and 4 projection nodes fewer per layer", () => {
    const fused = countDecodeStepNodes(arch.value, int4, "fused");
    const perModule = countDecodeStepNodes(arch.value, int4, "per-module");
    assert.equal(perModule.lora - fused.lora, 6 * L);
    assert.equal((perModule.byOp.MatMulNBits ?? 0) - (fused.byOp.MatMulNBits ?? 0), 3 * L);
    assert.ok(fused.total < perModule.total);
  });

  it("takes LoRA inputs named by the packed modules' PEFT keys", () => {
    const g = new GraphBuilder("t");
    buildDecoderGraph(g, arch.value, new WeightPlan(g, int4, "data"));
    const inputs = g
      .build()
      .inputs.map((i) => i.name)
      .filter((n) => n.includes("lora_"));
    assert.equal(inputs.length, 8 * L);
    assert.ok(inputs.includes("base_model.model.model.layers.1.self_attn.qkv_proj.lora_A.weight"));
    assert.ok(inputs.includes("base_model.model.model.layers.1.mlp.gate_up_proj.lora_B.weight"));
    assert.ok(inputs.includes("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
  });
});
