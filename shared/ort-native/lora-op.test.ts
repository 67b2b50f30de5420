import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { createRng } from "../random/index.ts";
import { buildOrtNative } from "./build.ts";
import {
  DEFAULT_ADDON_PATH,
  LORA_SHAPES,
  loadOrtNative,
  loraChainModel,
  loraFeeds,
  loraReference,
  loraRelativeError,
  type NativeSession,
  OrtNativeError,
  randomLoraOperands,
} from "./index.ts";
import { checkLoraPtx } from "./lora-ptx.ts";

// Float32 rounding against the float64 reference stays near 1e-7 of the terms' magnitude sum
// (loraReference); a wrong index or a dropped rank chunk gives order 1.
const TOLERANCE = 1e-5;

const rng = createRng(19);
const floats = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
const operands = (m: number, k: number, r: number, n: number) => randomLoraOperands(rng, m, k, r, n);

const built = buildOrtNative(DEFAULT_ADDON_PATH);
const skip =
  !built.ok && (built.error.reason === "no-compiler" || built.error.reason === "no-ort")
    ? `ort-native not built: ${built.error.message}`
    : false;

describe("lora-kernels.ptx", () => {
  it("was compiled from the committed lora-kernels.cu and .h (npm run build:lora-ptx regenerates it)", () => {
    const current = checkLoraPtx();
    assert.ok(current.ok, current.ok ? "" : current.error);
    // The entry points lora-cuda.cc looks up.
    assert.match(current.value, /\.visible \.entry lora_shrink\(/);
    assert.match(current.value, /\.visible \.entry lora_expand\(/);
    assert.match(current.value, /\.visible \.entry lora_fused\(/);
    assert.match(current.value, /\.visible \.entry lora_nbits\(/);
    assert.match(current.value, /\.visible \.entry lora_nbits_row\(/);
  });
});

describe("ai.loracast.LoraShrinkExpand on the addon's cpu session", { skip }, () => {
  let fused: NativeSession;
  let stockGemms: ort.InferenceSession;
  before(async () => {
    assert.ok(built.ok, built.ok ? "" : `${built.error.reason}: ${built.error.message}`);
    const loaded = loadOrtNative();
    assert.ok(loaded.ok, loaded.ok ? "" : loaded.error.message);
    // Nothing to opt into: every session the addon creates has the domain.
    fused = loaded.value.createSession(loraChainModel("fused"), { ep: "cpu", intraOpThreads: 2 });
    stockGemms = await ort.InferenceSession.create(loraChainModel("gemms"), { intraOpNumThreads: 1 });
  });
  after(async () => {
    fused?.release();
    await stockGemms?.release();
  });

  for (const [m, k, r, n] of LORA_SHAPES)
    it(`M=${m} K=${k} R=${r} N=${n}: the float64 reference and the two Gemms on onnxruntime-node`, async () => {
      const o = operands(m, k, r, n);
      const { z } = await fused.run(loraFeeds(o));
      assert.deepEqual(z?.dims, [m, n]);
      const got = z?.data as Float32Array;
      const reference = loraReference(o);
      const error = loraRelativeError(got, reference);
      assert.ok(error <= TOLERANCE, `largest error ${error} of the terms' magnitude, tolerance ${TOLERANCE}`);
      if (r === 0) assert.deepEqual(got, o.y, "rank 0: z = y exactly");
      const f = loraFeeds(o);
      const stock = await stockGemms.run(
        Object.fromEntries(
          Object.entries(f).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]),
        ),
      );
      const gemms = stock.z?.data as Float32Array;
      // Both float32: each within rounding of the reference, so of each other.
      assert.ok(loraRelativeError(gemms, reference) <= TOLERANCE);
      let apart = 0;
      for (let i = 0; i < got.length; i++)
        apart = Math.max(
          apart,
          Math.abs((got[i] as number) - (gemms[i] as number)) / Math.max(reference.scale[i] as number, 1e-30),
        );
      assert.ok(apart <= 2 * TOLERANCE, `fused vs Gemms: ${apart} of the terms' magnitude`);
    });

  it("chains: each node adds its branch to the previous output", async () => {
    const addon = loadOrtNative();
    assert.ok(addon.ok);
    const chain = addon.value.createSession(loraChainModel("fused", 3), { ep: "cpu", intraOpThreads: 1 });
    try {
      const [m, k, r, n] = [2, 40, 6, 24];
      const o = operands(m, k, r, n);
      const a = [o.a, floats(r * k), floats(r * k)];
      const b = [o.b, floats(n * r), floats(n * r)];
      const f: Record<string, { type: "float32"; dims: number[]; data: Float32Array }> = {
        x: { type: "float32", dims: [m, k], data: o.x },
        y: { type: "float32", dims: [m, n], data: o.y },
      };
      let y = o.y;
      let expected = loraReference(o);
      for (let i = 0; i < 3; i++) {
        f[`A${i}`] = { type: "float32", dims: [r, k], data: a[i] as Float32Array };
        f[`B${i}`] = { type: "float32", dims: [n, r], data: b[i] as Float32Array };
        expected = loraReference({ ...o, a: a[i] as Float32Array, b: b[i] as Float32Array, y });
        y = Float32Array.from(expected.z);
      }
      const { z } = await chain.run(f);
      // The reference rounds each node's output to float32 before the next, as the op does.
      assert.ok(loraRelativeError(z?.data as Float32Array, expected) <= TOLERANCE);
    } finally {
      chain.release();
    }
  });

  // The attribute picks the CUDA kernels (lora-op.h); the CPU kernel checks it all the same, so
  // a model with a bad value fails on every EP, at session creation.
  for (const kernel of ["auto", "split", "fused"])
    it(`takes kernel="${kernel}": same output as without the attribute`, async () => {
      const addon = loadOrtNative();
      assert.ok(addon.ok);
      const chosen = addon.value.createSession(loraChainModel("fused", 1, kernel), {
        ep: "cpu",
        intraOpThreads: 1,
      });
      try {
        const o = operands(3, 40, 8, 24);
        const [{ z: got }, { z: plain }] = [await chosen.run(loraFeeds(o)), await fused.run(loraFeeds(o))];
        assert.deepEqual(got?.data, plain?.data);
      } finally {
        chosen.release();
      }
    });

  for (const kernel of ["Fused", "", "x".repeat(300)])
    it(`refuses kernel="${kernel.slice(0, 8)}${kernel.length > 8 ? "…" : ""}" at session creation, naming the values`, () => {
      const addon = loadOrtNative();
      assert.ok(addon.ok);
      assert.throws(
        () => addon.value.createSession(loraChainModel("fused", 1, kernel), { ep: "cpu", intraOpThreads: 1 }),
        (e: unknown) =>
          e instanceof Error &&
          /LoraShrinkExpand: attribute kernel must be "auto", "split" or "fused", got "/.test(e.message) &&
          e.message.length < 1000,
      );
    });

  it("rejects operands whose shapes do not fit, naming them", async () => {
    const o = operands(2, 8, 4, 6);
    const bad = { ...loraFeeds(o), B0: { type: "float32" as const, dims: [6, 3], data: floats(18) } };
    await assert.rejects(
      fused.run(bad),
      (e: unknown) =>
        e instanceof OrtNativeError &&
        /LoraShrinkExpand: shapes do not fit x \[M, K\], A \[R, K\], B \[N, R\], y \[M, N\]: x \[2, 8\], A \[4, 8\], B \[6, 3\], y \[2, 6\]/.test(
          e.message,
        ),
    );
  });
});
