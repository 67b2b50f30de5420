import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import * as ort from "onnxruntime-node";
import { readModelManifest } from "../model-format/index.ts";
import { attr, encodeModel, GraphBuilder } from "../onnx/index.ts";
import { createRng } from "../random/index.ts";
import { disableOrtTelemetry } from "../runtime/index.ts";
import { decodeSafetensors, encodeSafetensors, type TensorInput } from "../safetensors/index.ts";
import { buildDecoderGraph } from "./decoder-graph.ts";
import { buildArtifacts, dequantize, parseArchitecture, quantize, quantLayout } from "./index.ts";
import { WeightPlan } from "./weights.ts";

// These tests create ORT sessions themselves, not through createSession.
disableOrtTelemetry();

const LLAMA = join(fixture("llama-tiny"), "base");
const llamaConfig = () =>
  JSON.parse(readFileSync(join(LLAMA, "config.json"), "utf8")) as Record<string, unknown>;

function randomMatrix(seed: number, n: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

describe("blockwise quantization", () => {
  for (const [bits, blockSize] of [
    [4, 32],
    [4, 128],
    [8, 32],
  ] as const) {
    it(`int${bits} block ${blockSize}: every value within half a step, zero exact`, () => {
      const n = 5;
      const k = 200; // not a multiple of the block size: the last block is padded
      const w = randomMatrix(bits + blockSize, n * k);
      w[7] = 0;
      const layout = quantLayout(n, k, bits, blockSize);
      const q = quantize(w, layout);
      assert.equal(q.packed.length, n * Math.ceil(k / blockSize) * ((blockSize * bits) / 8));
      const back = dequantize(q, layout);
      for (let i = 0; i < w.length; i++) {
        const scale = q.scales[Math.floor(i / k) * layout.kBlocks + Math.floor((i % k) / blockSize)] ?? 0;
        assert.ok(Math.abs((back[i] ?? 0) - (w[i] ?? 0)) <= scale / 2 + 1e-7, `element ${i}`);
      }
      assert.equal(back[7], 0);
    });
  }

  it("packs the even element of a pair in the low nibble", () => {
    const layout = quantLayout(1, 32, 4, 32);
    const w = new Float32Array(32);
    // w[0] = 0 is the block minimum (q = 0); w[1] = 1 its maximum (q = 15)
    w[1] = 1;
    const q = quantize(w, layout);
    assert.equal(q.packed[0], 0xf0);
  });

  for (const bits of [4, 8] as const) {
    it(`MatMulNBits(int${bits}) computes A · dequantize(W)ᵀ`, async () => {
      const [m, n, k, bs] = [3, 48, 256, 32];
      const layout = quantLayout(n, k, bits, bs);
      const q = quantize(randomMatrix(11, n * k), layout);
      const g = new GraphBuilder("nbits");
      const a = g.input("a", "float32", [m, k]);
      const packed = g.initializer("b", "uint8", [n, layout.kBlocks, layout.blobBytes], q.packed);
      const scales = g.initializer("s", "float32", [n, layout.kBlocks], q.scales);
      const zps = g.initializer("z", "uint8", [n, layout.zeroPointCols], q.zeroPoints);
      g.op(
        "MatMulNBits",
        [a, packed, scales, zps],
        { K: attr.int(k), N: attr.int(n), bits: attr.int(bits), block_size: attr.int(bs) },
        { domain: "com.microsoft", names: ["y"] },
      );
      g.output("y", "float32", [m, n]);
      const session = await ort.InferenceSession.create(
        encodeModel({ graph: g.build(), opsets: { "": 21, "com.microsoft": 1 }, producer: "test" }),
      );
      const x = randomMatrix(12, m * k);
      const y = (await session.run({ a: new ort.Tensor("float32", x, [m, k]) })).y?.data as Float32Array;
      const wd = dequantize(q, layout);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let want = 0;
          for (let t = 0; t < k; t++) want += (x[i * k + t] ?? 0) * (wd[j * k + t] ?? 0);
          assert.ok(
            Math.abs((y[i * n + j] ?? 0) - want) < 1e-4,
            `y[${i},${j}] = ${y[i * n + j]}, want ${want}`,
          );
        }
      }
      await session.release();
    });
  }
});

describe("decoder graph", () => {
  const arch = parseArchitecture(llamaConfig());
  assert.ok(arch.ok);
  const opCounts = (quant: ConstructorParameters<typeof WeightPlan>[1]) => {
    const g = new GraphBuilder("t");
    buildDecoderGraph(g, arch.value, new WeightPlan(g, quant, "data"), { layout: "per-module" });
    const counts = new Map<string, number>();
    for (const n of g.build().nodes) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
    return { counts, inputs: g.build().inputs.map((i) => i.name) };
  };
  const layers = arch.value.dims.numLayers;

  it("per-module: int4 runs every projection and the LM head through MatMulNBits", () => {
    const { counts } = opCounts({ kind: "nbits", bits: 4, blockSize: 32, emulate: false });
    assert.equal(counts.get("MatMulNBits"), 7 * layers + 1);
    assert.equal(counts.get("Gemm"), 2 * 7 * layers, "only the LoRA branches stay Gemm");
  });

  it("per-module: fp32 uses one Gemm per projection plus two per LoRA branch", () => {
    const { counts, inputs } = opCounts({ kind: "fp32" });
    assert.equal(counts.get("MatMulNBits"), undefined);
    assert.equal(counts.get("Gemm"), 3 * 7 * layers + 1);
    assert.ok(inputs.includes("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    assert.equal(inputs.filter((i) => i.includes("lora_")).length, 2 * 7 * layers);
  });
});

describe("architecture", () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["model_type", { model_type: "gpt2" }, /model_type.*unsupported/],
    ["hidden_act", { hidden_act: "gelu" }, /hidden_act/],
    [
      "rope type",
      { rope_parameters: { rope_type: "yarn", rope_theta: 1e4, factor: 4 } },
      /rope_parameters\.rope_type.*yarn/,
    ],
    ["partial rotary", { partial_rotary_factor: 0.5 }, /partial_rotary_factor/],
    [
      "llama3 without factor",
      { rope_parameters: { rope_type: "llama3", rope_theta: 1e4 } },
      /rope_parameters\.factor/,
    ],
    ["bad eps", { rms_norm_eps: -1 }, /rms_norm_eps/],
  ];
  for (const [what, patch, message] of refused) {
    it(`refuses ${what}, naming the field`, () => {
      const r = parseArchitecture({ ...llamaConfig(), ...patch });
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error.message, message);
    });
  }

  it("reads legacy rope_theta + rope_scaling as transformers v4 wrote it", () => {
    const c = llamaConfig();
    delete c.rope_parameters;
    const r = parseArchitecture({ ...c, rope_theta: 5e5, rope_scaling: { type: "linear", factor: 2 } });
    assert.ok(r.ok);
    assert.equal(r.value.rope.type, "linear");
    assert.equal(r.value.rope.theta, 5e5);
    assert.equal(r.value.rope.invFreq[0], 0.5);
  });
});

describe("artifacts", () => {
  it("a sharded checkpoint builds the same artifacts as the single file", async () => {
    const work = mkdtempSync(join(tmpdir(), "loracast-shards-"));
    try {
      const single = await buildArtifacts({
        checkpointDir: LLAMA,
        outDir: join(work, "a"),
        quant: { kind: "fp32" },
      });
      assert.ok(single.ok);
      const sharded = join(work, "sharded");
      cpSync(LLAMA, sharded, { recursive: true });
      rmSync(join(sharded, "model.safetensors"));
      const file = decodeSafetensors(readFileSync(join(LLAMA, "model.safetensors")));
      assert.ok(file.ok);
      const shards: Record<string, TensorInput>[] = [{}, {}];
      const weightMap: Record<string, string> = {};
      [...file.value.tensors.values()].forEach((t, i) => {
        const shard = i % 2;
        (shards[shard] as Record<string, TensorInput>)[t.name] = {
          dtype: t.dtype,
          shape: t.shape,
          data: t.bytes,
        };
        weightMap[t.name] = `model-0000${shard + 1}-of-00002.safetensors`;
      });
      shards.forEach((s, i) => {
        writeFileSync(join(sharded, `model-0000${i + 1}-of-00002.safetensors`), encodeSafetensors(s));
      });
      writeFileSync(join(sharded, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
      const built = await buildArtifacts({
        checkpointDir: sharded,
        outDir: join(work, "b"),
        quant: { kind: "fp32" },
      });
      assert.ok(built.ok, built.ok ? "" : built.error.message);
      assert.equal(built.value.fingerprint, single.value.fingerprint);
      const read = await readModelManifest(join(work, "b"));
      assert.ok(read.ok);
      assert.equal(read.value.manifest.fingerprint, single.value.fingerprint);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it("a checkpoint missing a weight is refused, naming the tensor", async () => {
    const work = mkdtempSync(join(tmpdir(), "loracast-missing-"));
    try {
      cpSync(LLAMA, join(work, "ckpt"), { recursive: true });
      const file = decodeSafetensors(readFileSync(join(LLAMA, "model.safetensors")));
      assert.ok(file.ok);
      const kept: Record<string, TensorInput> = {};
      for (const t of file.value.tensors.values()) {
        if (t.name !== "model.layers.1.mlp.up_proj.weight")
          kept[t.name] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
      }
      writeFileSync(join(work, "ckpt", "model.safetensors"), encodeSafetensors(kept));
      const built = await buildArtifacts({
        checkpointDir: join(work, "ckpt"),
        outDir: join(work, "out"),
        quant: { kind: "fp32" },
      });
      assert.equal(built.ok, false);
      if (!built.ok) assert.match(built.error.message, /model\.layers\.1\.mlp\.up_proj\.weight/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
