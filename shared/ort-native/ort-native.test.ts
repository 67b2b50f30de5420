import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { encodeModel, GraphBuilder } from "../onnx/index.ts";
import { createRng } from "../random/index.ts";
import { ExecutionProviderError } from "../runtime/execution-provider.ts";
import { buildOrtNative } from "./build.ts";
import {
  DEFAULT_ADDON_PATH,
  type HostTensor,
  loadOrtNative,
  type NativeSession,
  type OrtNative,
  OrtNativeError,
} from "./index.ts";

// y = Tanh(x·w + b) with w as an input (like a LoRA factor), s = k·k (int64), batch dynamic.
function model(): Uint8Array {
  const g = new GraphBuilder("g");
  g.input("x", "float32", ["batch", 8]);
  g.input("w", "float32", [8, 5]);
  g.input("k", "int64", ["batch"]);
  g.initializer("b", "float32", [5], Float32Array.from([0.1, -0.2, 0.3, -0.4, 0.5]));
  const xw = g.op1("MatMul", ["x", "w"]);
  g.op("Tanh", [g.op1("Add", [xw, "b"])], {}, { names: ["y"] });
  g.op("Mul", ["k", "k"], {}, { names: ["s"] });
  g.output("y", "float32", ["batch", 5]);
  g.output("s", "int64", ["batch"]);
  return encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "test" });
}

const rng = createRng(18);
const floats = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
const bytes = (t: HostTensor | ort.Tensor) => Buffer.from((t.data as Float32Array).buffer);

// The addon is built in setup. Only a machine without g++ or onnxruntime-node's Linux library
// skips; a failed header fetch or compile fails the suite.
const built = buildOrtNative(DEFAULT_ADDON_PATH);
const skip =
  !built.ok && (built.error.reason === "no-compiler" || built.error.reason === "no-ort")
    ? `ort-native not built: ${built.error.message}`
    : false;

describe("ort-native addon (CPU EP)", { skip }, () => {
  const bytesOfModel = model();
  let addon: OrtNative;
  let native: NativeSession;
  let stock: ort.InferenceSession;
  before(async () => {
    assert.ok(built.ok, built.ok ? "" : `${built.error.reason}: ${built.error.message}`);
    const loaded = loadOrtNative();
    assert.ok(loaded.ok, loaded.ok ? "" : loaded.error.message);
    addon = loaded.value;
    // The addon runs on the libonnxruntime.so.1 that onnxruntime-node ships, whatever its version.
    const require = createRequire(import.meta.url);
    assert.equal(addon.ortVersion, (require("onnxruntime-node/package.json") as { version: string }).version);
    native = addon.createSession(bytesOfModel, { ep: "cpu", intraOpThreads: 1 });
    stock = await ort.InferenceSession.create(bytesOfModel, {
      intraOpNumThreads: 1,
      graphOptimizationLevel: "all",
    });
  });
  after(async () => {
    native?.release();
    await stock?.release();
  });

  const feedsFor = (batch: number) => ({
    x: { type: "float32" as const, dims: [batch, 8], data: floats(batch * 8) },
    w: { type: "float32" as const, dims: [8, 5], data: floats(40) },
    k: {
      type: "int64" as const,
      dims: [batch],
      data: BigInt64Array.from({ length: batch }, (_, i) => BigInt(i - 7)),
    },
  });
  const stockRun = (f: ReturnType<typeof feedsFor>) =>
    stock.run({
      x: new ort.Tensor("float32", f.x.data, f.x.dims),
      w: new ort.Tensor("float32", f.w.data, f.w.dims),
      k: new ort.Tensor("int64", f.k.data, f.k.dims),
    });

  it("names the model's inputs and outputs", () => {
    assert.deepEqual(native.inputNames, ["x", "w", "k"]);
    assert.deepEqual(native.outputNames, ["y", "s"]);
  });

  it("host I/O equals onnxruntime-node bit for bit", async () => {
    const f = feedsFor(3);
    const got = native.run(f);
    const want = await stockRun(f);
    assert.deepEqual(got.y?.dims, [3, 5]);
    assert.equal(got.y?.type, "float32");
    assert.ok(bytes(got.y as HostTensor).equals(bytes(want.y as ort.Tensor)));
    assert.deepEqual(got.s?.data, want.s?.data);
  });

  it("a bound device-resident input reused across runs, outputs bound to a device tensor, equal the stock binding", async () => {
    const f = feedsFor(2);
    const w = native.upload(f.w);
    assert.ok(bytes(w.download()).equals(bytes(f.w)), "download returns what upload copied in");
    // Rank-0 LoRA factors (an untargeted module) are zero-element tensors.
    const empty = native.upload({ type: "float32", dims: [0, 8], data: new Float32Array(0) });
    assert.deepEqual(empty.download().dims, [0, 8]);
    empty.release();
    const y = native.allocate("float32", [2, 5]);
    for (let run = 0; run < 3; run++) {
      const x = { ...f.x, data: floats(16) };
      const host = native.run({ x, w, k: f.k }, { y, s: "host" });
      const want = await stockRun({ ...f, x });
      assert.deepEqual(Object.keys(host), ["s"]);
      assert.ok(bytes(y.download()).equals(bytes(want.y as ort.Tensor)), `run ${run}`);
    }
    w.release();
    y.release();
    assert.throws(() => native.run({ ...f, w }), /tensor was released/);
  });

  it("bad input is a clear OrtNativeError and the session still runs", () => {
    const f = feedsFor(2);
    const cases: [string, () => unknown, RegExp][] = [
      ["unknown input", () => native.run({ ...f, nope: f.k }), /unknown input 'nope'/],
      ["unknown output", () => native.run(f, { nope: "host" }), /unknown output 'nope'/],
      [
        "wrong dtype",
        () => native.run({ ...f, x: { type: "int32", dims: [2, 8], data: new Int32Array(16) } }),
        /type/i,
      ],
      [
        "wrong dims",
        () => native.run({ ...f, x: { ...f.x, dims: [4, 4] } }),
        /invalid dimensions|dimension/i,
      ],
      ["data length", () => native.run({ ...f, x: { ...f.x, dims: [3, 8] } }), /16 elements, dims need 24/],
      [
        "typed array",
        () => native.run({ ...f, x: { ...f.x, data: new Int32Array(16) as never } }),
        /typed array/,
      ],
      [
        "unknown dtype",
        () => native.run({ ...f, x: { ...f.x, type: "float64" as never } }),
        /unsupported dtype/,
      ],
      ["missing input", () => native.run({ x: f.x, w: f.w }), /missing input 'k'/],
      ["graph id without CUDA graphs", () => native.run(f, undefined, { graphId: 1 }), /enableCudaGraph/],
      ["bad graph id", () => native.run(f, undefined, { graphId: 0 }), /positive integer/],
      [
        "CUDA option on cpu",
        () => addon.createSession(bytesOfModel, { ep: "cpu", useTf32: false }),
        /useTf32: CUDA EP options/,
      ],
      ["upload size", () => native.upload({ ...f.w, dims: [8, 4] }), /40 elements, dims need 32/],
    ];
    for (const [what, body, message] of cases)
      assert.throws(body, (e: unknown) => e instanceof OrtNativeError && message.test(e.message), what);
    assert.deepEqual(native.run(f).y?.dims, [2, 5]);
  });

  it("a CUDA session where the CUDA provider does not load is an ExecutionProviderError", (t) => {
    try {
      addon.createSession(bytesOfModel, { ep: "cuda" }).release();
      t.skip("the CUDA provider loads on this machine");
    } catch (e) {
      assert.ok(e instanceof ExecutionProviderError, String(e));
      assert.equal(e.provider, "cuda");
    }
  });
});

describe("loadOrtNative", () => {
  const dir = mkdtempSync(join(tmpdir(), "ort-native-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("returns not-built for a missing file, never throwing", () => {
    const r = loadOrtNative(join(dir, "absent.node"));
    assert.equal(r.ok ? "loaded" : r.error.reason, "not-built");
  });

  it("returns load-failed for a file that is not an addon", () => {
    const file = join(dir, "broken.node");
    writeFileSync(file, "not an ELF file");
    const r = loadOrtNative(file);
    assert.equal(r.ok ? "loaded" : r.error.reason, "load-failed");
    assert.match(r.ok ? "" : r.error.message, /broken\.node/);
  });
});
