import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
  DeviceTensor,
  type HostTensor,
  loadOrtNative,
  type NativeSession,
  type OrtNative,
  OrtNativeError,
} from "./index.ts";

// y = Tanh(x·w + b) with w as an input (like a LoRA factor), s = k·k (int64), n = -x (an output
// of x's type and shape, fed back as x in a later run); batch dynamic.
function model(): Uint8Array {
  const g = new GraphBuilder("g");
  g.input("x", "float32", ["batch", 8]);
  g.input("w", "float32", [8, 5]);
  g.input("k", "int64", ["batch"]);
  g.initializer("b", "float32", [5], Float32Array.from([0.1, -0.2, 0.3, -0.4, 0.5]));
  const xw = g.op1("MatMul", ["x", "w"]);
  g.op("Tanh", [g.op1("Add", [xw, "b"])], {}, { names: ["y"] });
  g.op("Mul", ["k", "k"], {}, { names: ["s"] });
  g.op("Neg", ["x"], {}, { names: ["n"] });
  g.output("y", "float32", ["batch", 5]);
  g.output("s", "int64", ["batch"]);
  g.output("n", "float32", ["batch", 8]);
  return encodeModel({ graph: g.build(), opsets: { "": 21 }, producer: "test" });
}

// h = x·w, CHAIN times over: a run long enough (~0.1-1 s on one thread) to watch the event loop.
const CHAIN = 48;
const SIDE = 384;
function chainModel(): Uint8Array {
  const g = new GraphBuilder("chain");
  g.input("x", "float32", [SIDE, SIDE]);
  g.input("w", "float32", [SIDE, SIDE]);
  let h = "x";
  for (let i = 0; i < CHAIN - 1; i++) h = g.op1("MatMul", [h, "w"]);
  g.op("MatMul", [h, "w"], {}, { names: ["h"] });
  g.output("h", "float32", [SIDE, SIDE]);
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

  it("does not link libonnxruntime: one build loads ORT 1.29 (the CUDA path) and 1.30", () => {
    // ORT versions its symbols per release (OrtGetApiBase@VERS_1.30.0): a linked addon needs the
    // release it was linked against. It dlopens onnxruntime-node's library instead. A needed
    // library's name sits NUL-delimited in the dynamic string table, as libc's does.
    const elf = readFileSync(DEFAULT_ADDON_PATH);
    assert.ok(elf.includes("\0libc.so.6\0"));
    assert.ok(!elf.includes("\0libonnxruntime.so.1\0"));
  });

  it("names the model's inputs and outputs, its EP and device", () => {
    assert.deepEqual(native.inputNames, ["x", "w", "k"]);
    assert.deepEqual(native.outputNames, ["y", "s", "n"]);
    assert.equal(native.ep, "cpu");
    assert.equal(native.deviceId, 0);
    // Pinned memory is the CUDA EP's; a cpu session's host outputs are ordinary memory.
    assert.equal(native.hostOutputs, "pageable");
  });

  it("an asynchronous run with host I/O equals onnxruntime-node bit for bit", async () => {
    const f = feedsFor(3);
    const pending = native.run(f);
    assert.ok(pending instanceof Promise);
    const got = await pending;
    const want = await stockRun(f);
    assert.deepEqual(Object.keys(got).sort(), ["n", "s", "y"]);
    assert.deepEqual(got.y?.dims, [3, 5]);
    assert.equal(got.y?.type, "float32");
    assert.ok(bytes(got.y as HostTensor).equals(bytes(want.y as ort.Tensor)));
    assert.deepEqual(got.s?.data, want.s?.data);
  });

  it("two runs in flight on one session each return their own result", async () => {
    const [f, g] = [feedsFor(2), feedsFor(4)];
    const [a, b] = await Promise.all([native.run(f), native.run(g)]);
    const [wantA, wantB] = [await stockRun(f), await stockRun(g)];
    assert.ok(bytes(a.y as HostTensor).equals(bytes(wantA.y as ort.Tensor)));
    assert.ok(bytes(b.y as HostTensor).equals(bytes(wantB.y as ort.Tensor)));
    assert.deepEqual(b.s?.data, wantB.s?.data);
  });

  it("a bound device-resident input reused across runs, outputs bound to a device tensor, equal the stock binding", async () => {
    const f = feedsFor(2);
    const w = native.upload(f.w);
    assert.equal(w.location, "cpu");
    assert.equal(w.bytes, 8 * 5 * 4);
    assert.ok(bytes(w.download()).equals(bytes(f.w)), "download returns what upload copied in");
    // Rank-0 LoRA factors (an untargeted module) are zero-element tensors.
    const empty = native.upload({ type: "float32", dims: [0, 8], data: new Float32Array(0) });
    assert.deepEqual(empty.download().dims, [0, 8]);
    assert.equal(empty.bytes, 0);
    empty.release();
    const y = native.allocate("float32", [2, 5]);
    for (let run = 0; run < 3; run++) {
      const x = { ...f.x, data: floats(16) };
      const got = await native.run({ x, w, k: f.k }, { y, s: "host" });
      const want = await stockRun({ ...f, x });
      assert.deepEqual(Object.keys(got).sort(), ["s", "y"]);
      assert.equal(got.y, y, "the given device tensor itself");
      assert.deepEqual(got.s.data, want.s?.data);
      assert.ok(bytes(y.download()).equals(bytes(want.y as ort.Tensor)), `run ${run}`);
    }
    w.release();
    y.release();
    await assert.rejects(native.run({ ...f, w }), /tensor was released/);
  });

  it('"device" outputs are DeviceTensors of the dims ORT produced, that download and feed a later run', async () => {
    const f = feedsFor(3);
    const got = await native.run(f, { y: "device", n: "device", s: "host" });
    const want = await stockRun(f);
    assert.ok(got.y instanceof DeviceTensor && got.n instanceof DeviceTensor);
    assert.deepEqual([got.y.dims, got.y.type, got.y.location, got.y.bytes], [[3, 5], "float32", "cpu", 60]);
    assert.deepEqual(got.n.dims, [3, 8]);
    assert.ok(bytes(got.y.download()).equals(bytes(want.y as ort.Tensor)));
    assert.deepEqual(got.s.data, want.s?.data);
    // n = -x fed back as x: y = Tanh(-x·w + b), as the stock binding computes it from host data.
    const again = await native.run({ ...f, x: got.n }, { y: "device" });
    const negated = { ...f, x: { ...f.x, data: f.x.data.map((v) => -v) } };
    const wantAgain = await stockRun(negated);
    assert.ok(bytes(again.y.download()).equals(bytes(wantAgain.y as ort.Tensor)));
    for (const t of [got.y, got.n, again.y]) t.release();
    assert.throws(() => got.y.download(), /tensor was released/);
  });

  it("bad input rejects with a clear OrtNativeError and the session still runs", async () => {
    const f = feedsFor(2);
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ["unknown input", () => native.run({ ...f, nope: f.k }), /unknown input 'nope'/],
      ["unknown output", () => native.run(f, { nope: "host" }), /unknown output 'nope'/],
      ["bad target", () => native.run(f, { y: "gpu" as never }), /"host", "device" or a device tensor/],
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
      [
        "output tensor of the wrong shape",
        () => native.run(f, { y: native.allocate("float32", [3, 5]) }),
        /shape|dimension/i,
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
    ];
    for (const [what, body, message] of cases)
      await assert.rejects(
        body,
        (e: unknown) => e instanceof OrtNativeError && message.test(e.message),
        what,
      );
    const sync: [string, () => unknown, RegExp][] = [
      [
        "CUDA option on cpu",
        () => addon.createSession(bytesOfModel, { ep: "cpu", useTf32: false }),
        /useTf32: CUDA EP options/,
      ],
      ["upload size", () => native.upload({ ...f.w, dims: [8, 4] }), /40 elements, dims need 32/],
    ];
    for (const [what, body, message] of sync)
      assert.throws(body, (e: unknown) => e instanceof OrtNativeError && message.test(e.message), what);
    assert.deepEqual((await native.run(f)).y?.dims, [2, 5]);
  });

  it("a session and its tensors released during a run stay alive until the run ends", async () => {
    const session = addon.createSession(bytesOfModel, { ep: "cpu", intraOpThreads: 1 });
    const f = feedsFor(2);
    const w = session.upload(f.w);
    const y = session.allocate("float32", [2, 5]);
    const pending = session.run({ ...f, w }, { y, s: "host" });
    w.release();
    y.release();
    session.release();
    const got = await pending;
    assert.deepEqual(got.s.data, (await stockRun(f)).s?.data);
    assert.throws(() => y.download(), /tensor was released/);
    await assert.rejects(
      session.run(f),
      (e: unknown) => e instanceof OrtNativeError && /session was released/.test(e.message),
    );
  });

  for (const dedicatedThread of [false, true])
    it(`the event loop keeps turning during a long run (${dedicatedThread ? "the session's own thread" : "libuv's pool"})`, async () => {
      const chain = addon.createSession(chainModel(), { ep: "cpu", intraOpThreads: 1, dedicatedThread });
      try {
        // Entries of x·w^k stay near 1: w's columns have norm ~1.
        const x = { type: "float32" as const, dims: [SIDE, SIDE], data: floats(SIDE * SIDE) };
        const scale = Math.sqrt(3 / SIDE);
        const w = { ...x, data: floats(SIDE * SIDE).map((v) => v * scale) };
        let ticks = 0;
        const timer = setInterval(() => ticks++, 1);
        const t0 = performance.now();
        const got = await chain.run({ x, w });
        const ms = performance.now() - t0;
        clearInterval(timer);
        assert.deepEqual(got.h?.dims, [SIDE, SIDE]);
        // A run on the JS thread would let the interval fire at most once, after it ended.
        assert.ok(ms > 20, `the chain took ${ms.toFixed(0)} ms: too short to tell`);
        assert.ok(ticks >= 3, `${ticks} timer ticks during a ${ms.toFixed(0)} ms run`);
      } finally {
        chain.release();
      }
    });

  it("with dedicatedThread, runs settle in call order, equal the stock binding, and outlive a release", async () => {
    const own = addon.createSession(bytesOfModel, { ep: "cpu", intraOpThreads: 1, dedicatedThread: true });
    const feeds = [feedsFor(1), feedsFor(2), feedsFor(3), feedsFor(4)];
    const order: number[] = [];
    const pending = feeds.map((f, i) =>
      own.run(f, { y: "device", s: "host" }).then((r) => {
        order.push(i);
        return r;
      }),
    );
    own.release();
    const got = await Promise.all(pending);
    assert.deepEqual(order, [0, 1, 2, 3]);
    for (const [i, f] of feeds.entries()) {
      const want = await stockRun(f);
      assert.ok(bytes(got[i]?.y.download() as HostTensor).equals(bytes(want.y as ort.Tensor)), `run ${i}`);
      got[i]?.y.release();
    }
    await assert.rejects(own.run(feeds[0] as ReturnType<typeof feedsFor>), /session was released/);
  });

  it("dropped device tensors are collected in time: their bytes count as V8 external memory", async () => {
    // 32 × 16 MB outside V8's heap, each dropped at once. Unreported, V8 sees a few small objects
    // and collects none of them (measured: 0 of 32, 512 MB resident).
    const data = new Float32Array(4 << 20).fill(1);
    let collected = 0;
    const registry = new FinalizationRegistry(() => collected++);
    for (let i = 0; i < 32; i++) {
      registry.register(native.upload({ type: "float32", dims: [data.length], data }), i);
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(collected >= 16, `${collected} of 32 dropped 16 MB tensors collected`);
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

  it("never runs a non-addon file as JavaScript: load-failed with the loader's message", () => {
    // require() would run a .txt file as CommonJS; only a native addon may load.
    const file = join(dir, "addon.txt");
    writeFileSync(file, "globalThis.loracastAddonRan = true; module.exports = { init: () => '1.0.0' };");
    const r = loadOrtNative(file);
    assert.equal((globalThis as { loracastAddonRan?: boolean }).loracastAddonRan, undefined);
    assert.equal(r.ok ? "loaded" : r.error.reason, "load-failed");
    assert.match(r.ok ? "" : r.error.message, /addon\.txt: .*(invalid ELF header|file too short)/);
  });
});
