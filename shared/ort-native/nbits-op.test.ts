/**
 * `ai.loracast.MatMulNBitsLora` on the addon's cpu session: the float64 reference, the two nodes it
 * replaces (`MatMulNBits` then `LoraShrinkExpand`) and the base projection alone (R = 0), over
 * decode and prefill row counts, odd K (a padded last block) and block sizes 16, 32 and 64; its
 * attributes and operands refused with the reason at session creation or run. The CUDA kernels'
 * checks are the CPU emulation's (lora-kernels-emulated.test.ts) and, on a GPU host,
 * test/bench/gpu/nbits-op-check.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MATMUL_NBITS_LORA } from "../model-format/index.ts";
import { attr, encodeModel, GraphBuilder } from "../onnx/index.ts";
import { createRng } from "../random/index.ts";
import { buildOrtNative } from "./build.ts";
import {
  DEFAULT_ADDON_PATH,
  loadOrtNative,
  loraRelativeError,
  type NativeSession,
  nbitsChainModel,
  nbitsFeeds,
  nbitsReference,
  OrtNativeError,
  randomNbitsOperands,
  randomNbitsWeight,
} from "./index.ts";

// Float32 sums against the float64 reference stay near 1e-7 of the terms' magnitude; a wrong nibble,
// zero point or block index gives order 1e-2 and more.
const TOLERANCE = 1e-5;
const rng = createRng(29);

const built = buildOrtNative(DEFAULT_ADDON_PATH);
const skip =
  !built.ok && (built.error.reason === "no-compiler" || built.error.reason === "no-ort")
    ? `ort-native not built: ${built.error.message}`
    : false;

/** [M, K, R, N, block size] */
const SHAPES: [number, number, number, number, number][] = [
  [1, 896, 48, 1152, 32],
  [8, 896, 16, 896, 32],
  [8, 4864, 16, 96, 32],
  [3, 37, 5, 33, 16],
  [2, 130, 0, 20, 64],
  [70, 64, 8, 40, 32],
  [0, 64, 4, 8, 32],
];

describe("ai.loracast.MatMulNBitsLora on the addon's cpu session", { skip }, () => {
  const sessions: NativeSession[] = [];
  const open = (model: Uint8Array) => {
    const addon = loadOrtNative();
    assert.ok(addon.ok, addon.ok ? "" : addon.error.message);
    const s = addon.value.createSession(model, { ep: "cpu", intraOpThreads: 2 });
    sessions.push(s);
    return s;
  };
  before(() => assert.ok(built.ok, built.ok ? "" : `${built.error.reason}: ${built.error.message}`));
  after(() => {
    for (const s of sessions) s.release();
  });

  for (const [m, k, r, n, block] of SHAPES)
    it(`M=${m} K=${k} R=${r} N=${n} block ${block}: the float64 reference, MatMulNBits + LoraShrinkExpand, and at R = 0 the base`, async () => {
      const o = randomNbitsOperands(rng, m, r, randomNbitsWeight(rng, n, k, block));
      const reference = nbitsReference(o);
      const fused = (await open(nbitsChainModel("fused", [o.weight])).run(nbitsFeeds(o, "fused"))).z;
      assert.deepEqual(fused?.dims, [m, n]);
      const got = fused?.data as Float32Array;
      const error = loraRelativeError(got, reference);
      assert.ok(error <= TOLERANCE, `largest error ${error} of the terms' magnitude`);
      const separate = (await open(nbitsChainModel("separate", [o.weight])).run(nbitsFeeds(o, "separate"))).z
        ?.data as Float32Array;
      assert.ok(loraRelativeError(separate, reference) <= TOLERANCE, "MatMulNBits + LoraShrinkExpand");
      if (r === 0) {
        const base = (await open(nbitsChainModel("base", [o.weight])).run(nbitsFeeds(o, "base"))).z
          ?.data as Float32Array;
        assert.ok(loraRelativeError(base, reference) <= TOLERANCE, "MatMulNBits alone");
      }
    });

  it("sums a chain of projections with their own weights and factors", async () => {
    const [m, k, r, n] = [2, 64, 4, 24];
    const parts = [0, 1, 2].map(() => randomNbitsOperands(rng, m, r, randomNbitsWeight(rng, n, k, 32)));
    const x = parts[0]?.x as Float32Array;
    const feeds = { x: { type: "float32" as const, dims: [m, k], data: x } } as Record<
      string,
      { type: "float32"; dims: number[]; data: Float32Array }
    >;
    const expected = new Float64Array(m * n);
    const scale = new Float64Array(m * n);
    parts.forEach((p, i) => {
      feeds[`A${i}`] = { type: "float32", dims: [r, k], data: p.a };
      feeds[`B${i}`] = { type: "float32", dims: [n, r], data: p.b };
      const ref = nbitsReference({ ...p, x });
      for (let e = 0; e < m * n; e++) {
        expected[e] = (expected[e] as number) + (ref.z[e] as number);
        scale[e] = (scale[e] as number) + (ref.scale[e] as number);
      }
    });
    const chain = open(
      nbitsChainModel(
        "fused",
        parts.map((p) => p.weight),
      ),
    );
    const { z } = await chain.run(feeds);
    assert.ok(loraRelativeError(z?.data as Float32Array, { z: expected, scale }) <= TOLERANCE);
  });

  for (const kernel of ["auto", "split", "fused"])
    it(`takes kernel="${kernel}": the same output as without the attribute`, async () => {
      const o = randomNbitsOperands(rng, 3, 8, randomNbitsWeight(rng, 24, 64, 32));
      const plain = await open(nbitsChainModel("fused", [o.weight])).run(nbitsFeeds(o, "fused"));
      const chosen = await open(nbitsChainModel("fused", [o.weight], kernel)).run(nbitsFeeds(o, "fused"));
      assert.deepEqual(chosen.z?.data, plain.z?.data);
    });

  /** One node with the given attributes over a 4 × 64 weight in blocks of 32, inputs all dynamic. */
  const withAttributes = (attributes: Record<string, number | string>) => {
    const g = new GraphBuilder("nbits-attributes");
    const names = ["x", "q", "scales", "zp", "A", "B"];
    const types = ["float32", "uint8", "float32", "uint8", "float32", "float32"] as const;
    for (const [i, name] of names.entries())
      g.input(name, types[i] ?? "float32", name === "q" ? ["n", "b", "c"] : [`${name}0`, `${name}1`]);
    const attrs = Object.fromEntries(
      Object.entries(attributes).map(([key, v]) => [
        key,
        typeof v === "number" ? attr.int(v) : attr.string(v),
      ]),
    );
    g.op(MATMUL_NBITS_LORA.opType, names, attrs, { domain: MATMUL_NBITS_LORA.domain, names: ["z"] });
    g.output("z", "float32", null);
    return encodeModel({
      graph: g.build(),
      opsets: { "": 21, [MATMUL_NBITS_LORA.domain]: MATMUL_NBITS_LORA.version },
      producer: "loracast-nbits-op",
    });
  };
  const good = { K: 64, N: 4, bits: 4, block_size: 32 };
  for (const [what, attributes, reason] of [
    ["bits 8", { ...good, bits: 8 }, /MatMulNBitsLora: bits must be 4, got 8/],
    [
      "block_size 24",
      { ...good, block_size: 24 },
      /block_size must be a power of two from 16 to 256, got 24/,
    ],
    [
      "block_size 512",
      { ...good, block_size: 512 },
      /block_size must be a power of two from 16 to 256, got 512/,
    ],
    ["no N", { K: 64, bits: 4, block_size: 32 }, /MatMulNBitsLora: attribute N \(int\) is required/],
    ["K 0", { ...good, K: 0 }, /K and N must be from 1 to 2\^30, got K 0, N 4/],
    [
      "accuracy_level 5",
      { ...good, accuracy_level: 5 },
      /MatMulNBitsLora: accuracy_level must be 0 to 4, got 5/,
    ],
    [
      "kernel Fused",
      { ...good, kernel: "Fused" },
      /attribute kernel must be "auto", "split" or "fused", got "Fused"/,
    ],
  ] as const)
    it(`refuses ${what} at session creation, with the reason`, () => {
      const addon = loadOrtNative();
      assert.ok(addon.ok);
      assert.throws(
        () => addon.value.createSession(withAttributes(attributes), { ep: "cpu", intraOpThreads: 1 }),
        (e: unknown) => e instanceof Error && reason.test(e.message),
      );
    });

  it("rejects operands whose shapes do not fit the attributes, naming them", async () => {
    const o = randomNbitsOperands(rng, 2, 4, randomNbitsWeight(rng, 4, 64, 32));
    const session = open(withAttributes(good));
    const feeds = {
      x: { type: "float32" as const, dims: [2, 64], data: o.x },
      q: { type: "uint8" as const, dims: [4, 2, 16], data: o.weight.q },
      scales: { type: "float32" as const, dims: [4, 2], data: o.weight.scales },
      zp: { type: "uint8" as const, dims: [4, 1], data: o.weight.zeroPoints },
      A: { type: "float32" as const, dims: [4, 64], data: o.a },
      B: { type: "float32" as const, dims: [4, 4], data: o.b },
    };
    // Runs as built, then refuses lora_B of the wrong rank count.
    assert.deepEqual((await session.run(feeds)).z?.dims, [2, 4]);
    await assert.rejects(
      session.run({ ...feeds, B: { type: "float32", dims: [4, 3], data: o.b.subarray(0, 12) } }),
      (e: unknown) =>
        e instanceof OrtNativeError &&
        /MatMulNBitsLora: shapes do not fit .*: A \[2, 64\], B \[4, 2, 16\], scales \[4, 2\], zero_points \[4, 1\], lora_A \[4, 64\], lora_B \[4, 3\]/.test(
          e.message,
        ),
    );
  });
});
