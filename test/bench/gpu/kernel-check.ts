/**
 * Single-kernel checks of the fused decoder's ops on a GPU EP against the CPU EP, for finding which
 * kernel moves a conformance figure (issue 18): `MatMulNBits` (int4, block 32, accuracy level 0 by default, as
 * the builder emits) at the projection shapes of the shared fixtures and Qwen2.5-0.5B, fused and
 * per module, and `SkipSimplifiedLayerNormalization` with its residual output. Seeded random data;
 * prints the largest |GPU − CPU| per case. `node .carry/cuda/kernel-check.mjs cuda` on the GPU host.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quantize, quantLayout } from "@loracast/shared/model-builder";
import { attr, encodeModel, GraphBuilder } from "@loracast/shared/onnx";
import { createRng } from "@loracast/shared/random";
import { createSession, executionProviderSchema } from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";

const ep = executionProviderSchema.catch("cuda").parse(process.argv[2]);
// MatMulNBits' accuracy_level: 0 (float activations, what conformance builds) unless given; 4 makes
// the CPU quantize activations to int8, ~3e-3 off by itself.
const accuracyLevel = Number(process.argv[3] ?? "0");
const rng = createRng(7);
const random = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * s);
const dir = mkdtempSync(join(tmpdir(), "kernel-check-"));

async function compare(name: string, model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<void> {
  const path = join(dir, `${name.replace(/\W+/g, "_")}.onnx`);
  writeFileSync(path, model);
  const outs = [];
  for (const provider of ["cpu", ep] as const) {
    const session = await createSession(path, { executionProviders: [provider] });
    outs.push(await session.run(feeds));
    await session.release();
  }
  const [cpu, gpu] = outs;
  const diffs = Object.keys(cpu ?? {}).map((k) => {
    const a = cpu?.[k]?.data as Float32Array;
    const b = gpu?.[k]?.data as Float32Array;
    let d = 0;
    let m = 0;
    for (let i = 0; i < a.length; i++) {
      d = Math.max(d, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
      m = Math.max(m, Math.abs(a[i] ?? 0));
    }
    return `${k} max|${ep}−cpu| ${d.toExponential(2)} (max|cpu| ${m.toFixed(2)})`;
  });
  process.stdout.write(`${name}: ${diffs.join("; ")}\n`);
}

async function matMulNBits(k: number, n: number, rows: number): Promise<void> {
  const layout = quantLayout(n, k, 4, 32);
  const q = quantize(random(n * k, 0.1), layout);
  const g = new GraphBuilder("g");
  g.input("x", "float32", ["m", k]);
  g.initializer("b", "uint8", [n, layout.kBlocks, layout.blobBytes], q.packed);
  g.initializer("s", "float32", [n, layout.kBlocks], q.scales);
  g.initializer("z", "uint8", [n, layout.zeroPointCols], q.zeroPoints);
  g.op(
    "MatMulNBits",
    ["x", "b", "s", "z"],
    {
      K: attr.int(k),
      N: attr.int(n),
      bits: attr.int(4),
      block_size: attr.int(32),
      accuracy_level: attr.int(accuracyLevel),
    },
    { domain: "com.microsoft", names: ["y"] },
  );
  g.output("y", "float32", ["m", n]);
  const model = encodeModel({ graph: g.build(), opsets: { "": 21, "com.microsoft": 1 }, producer: "check" });
  await compare(`MatMulNBits K=${k} N=${n} M=${rows}`, model, {
    x: new ort.Tensor("float32", random(rows * k), [rows, k]),
  });
}

async function skipNorm(d: number, rows: number): Promise<void> {
  const g = new GraphBuilder("g");
  g.input("x", "float32", ["m", d]);
  g.input("skip", "float32", ["m", d]);
  g.initializer("w", "float32", [d], random(d));
  const [y, , , sum] = g.op(
    "SkipSimplifiedLayerNormalization",
    ["x", "skip", "w"],
    { epsilon: attr.float(1e-6) },
    { domain: "com.microsoft", outputs: 4, omit: [1, 2] },
  );
  g.op("Identity", [y ?? ""], {}, { names: ["y"] });
  g.op("Identity", [sum ?? ""], {}, { names: ["sum"] });
  g.output("y", "float32", ["m", d]);
  g.output("sum", "float32", ["m", d]);
  const model = encodeModel({ graph: g.build(), opsets: { "": 21, "com.microsoft": 1 }, producer: "check" });
  await compare(`SkipSimplifiedLayerNormalization D=${d} M=${rows}`, model, {
    x: new ort.Tensor("float32", random(rows * d), [rows, d]),
    skip: new ort.Tensor("float32", random(rows * d), [rows, d]),
  });
}

// [K, N]: llama-tiny (D 64, I 176; fused qkv 128, gate/up 352), qwen2-tiny (D 96, I 256; qkv 160,
// gate/up 512), Qwen2.5-0.5B (D 896, I 4864; qkv 1152, gate/up 9728).
const shapes: [number, number][] = [
  [64, 64],
  [64, 32],
  [64, 128],
  [64, 176],
  [64, 352],
  [176, 64],
  [96, 96],
  [96, 160],
  [96, 512],
  [256, 96],
  [896, 1152],
  [896, 9728],
  [4864, 896],
];
for (const [k, n] of shapes) for (const m of [1, 6]) await matMulNBits(k, n, m);
for (const d of [64, 96, 896]) for (const m of [1, 6]) await skipNorm(d, m);
