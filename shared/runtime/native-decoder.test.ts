import assert from "node:assert/strict";
import { dirname } from "node:path";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ortNativeSkip } from "@loracast/dev-support/ort-native";
import {
  decodeFixedTokens,
  loadTinyModel,
  prefillStep,
  type TinyModel,
} from "@loracast/dev-support/tiny-model";
import {
  DeviceTensor,
  type OrtNative,
  OrtNativeError,
  type OrtNativeUnavailable,
} from "../ort-native/index.ts";
import { err, ok, type Result } from "../result/index.ts";
import { DecoderSession } from "./decoder-session.ts";
import type { LoraFeeds } from "./lora-feeds.ts";
import { addonWithoutFusedLora, chooseBackend, OrtBackendError } from "./native-decoder.ts";
import type { ResidentCounts } from "./resident-feeds.ts";

const addon = { ortVersion: "test" } as OrtNative;
type Load = () => Result<OrtNative, OrtNativeUnavailable>;
const loaded: Load = () => ok(addon);
const missing: Load = () => err({ reason: "not-built", message: "/x/ort-native.node does not exist" });

describe("chooseBackend", () => {
  it("auto takes the addon on cuda only, where it loads, and says why otherwise", () => {
    const on = (ep: "cpu" | "cuda" | "webgpu", load = loaded, profiling = false) => {
      const r = chooseBackend("auto", ep, { profiling }, load);
      assert.ok(r.ok);
      return [r.value.backend, r.value.reason];
    };
    assert.deepEqual(on("cuda"), ["ort-native", "auto on cuda"]);
    assert.deepEqual(on("cpu"), ["onnxruntime-node", "auto on cpu"]);
    assert.deepEqual(on("webgpu"), ["onnxruntime-node", "auto on webgpu"]);
    assert.deepEqual(on("cuda", missing), [
      "onnxruntime-node",
      "ort-native not-built: /x/ort-native.node does not exist",
    ]);
    assert.deepEqual(on("cuda", loaded, true), [
      "onnxruntime-node",
      "ORT's profiler (profileFilePrefix) runs on the stock binding only",
    ]);
  });

  it("ort-native asked for is the addon on cpu and cuda, and an error that says why elsewhere", () => {
    for (const ep of ["cpu", "cuda"] as const) {
      const r = chooseBackend("ort-native", ep, { profiling: false }, loaded);
      assert.ok(r.ok && r.value.backend === "ort-native" && r.value.addon === addon);
    }
    const refused = (ep: "cpu" | "cuda" | "webgpu", profiling: boolean, load = loaded) => {
      const r = chooseBackend("ort-native", ep, { profiling }, load);
      assert.ok(!r.ok);
      assert.ok(r.error instanceof OrtBackendError);
      return r.error.message;
    };
    assert.match(refused("cpu", false, missing), /^ort-native cannot be used: ort-native not-built: \/x\//);
    assert.match(refused("webgpu", false), /runs on cpu and cuda only, not webgpu/);
    assert.match(refused("cuda", true), /profiler/);
  });

  it("a shrink-expand model takes the addon on cpu too, and refuses every way without it, naming the fix", () => {
    const fused = { profiling: false, loraOp: "shrink-expand" } as const;
    for (const [asked, ep] of [
      ["auto", "cpu"],
      ["auto", "cuda"],
      ["ort-native", "cpu"],
    ] as const) {
      const r = chooseBackend(asked, ep, fused, loaded);
      assert.ok(r.ok && r.value.backend === "ort-native" && r.value.addon === addon, `${asked} on ${ep}`);
    }
    const auto = chooseBackend("auto", "cpu", fused, loaded);
    assert.ok(auto.ok);
    assert.equal(auto.value.reason, "auto on cpu: the model's LoRA op is shrink-expand");
    const refused = (
      asked: "auto" | "onnxruntime-node",
      ep: "cpu" | "webgpu",
      profiling: boolean,
      load: Load,
    ) => {
      const r = chooseBackend(asked, ep, { ...fused, profiling }, load);
      assert.ok(!r.ok && r.error instanceof OrtBackendError);
      assert.match(r.error.message, /decoder\.loraOp shrink-expand/);
      assert.match(r.error.message, /rebuild the model with --lora-op gemm/);
      return r.error.message;
    };
    assert.match(
      refused("onnxruntime-node", "cpu", false, () => assert.fail("loaded")),
      /^backend onnxruntime-node cannot run this model: .*; use backend auto or ort-native;/,
    );
    assert.match(refused("auto", "cpu", false, missing), /ort-native not-built: \/x\/ort-native\.node/);
    assert.match(refused("auto", "webgpu", false, loaded), /runs on cpu and cuda only, not webgpu/);
    assert.match(refused("auto", "cpu", true, loaded), /profiler/);
    // A gemm model (or a manifest without the field) is decided as before.
    const plain = chooseBackend("auto", "cpu", { profiling: false, loraOp: "gemm" }, loaded);
    assert.deepEqual(plain, ok({ backend: "onnxruntime-node", reason: "auto on cpu" }));
  });

  it("names an addon built before the fused LoRA op from ORT's load error, and nothing else", () => {
    // ORT's words when a session does not know the op (onnxruntime-node's, and an older addon's).
    const refused = new OrtNativeError(
      "Load model from /m/model.onnx failed:Fatal error: ai.loracast:LoraShrinkExpand(-1) is not a registered function/op",
    );
    const older = addonWithoutFusedLora(refused, "shrink-expand");
    assert.ok(older instanceof OrtBackendError);
    assert.match(
      older.message,
      /^the ort-native addon does not run ai\.loracast LoraShrinkExpand.*npm run build:ort-native/,
    );
    // An addon built before MatMulNBitsLora refuses a 4-bit shrink-expand model on that op.
    const olderNbits = addonWithoutFusedLora(
      new OrtNativeError(refused.message.replace("LoraShrinkExpand", "MatMulNBitsLora")),
      "shrink-expand",
    );
    assert.match(
      olderNbits?.message ?? "",
      /^the ort-native addon does not run ai\.loracast MatMulNBitsLora/,
    );
    assert.equal(addonWithoutFusedLora(refused, "gemm"), null);
    assert.equal(addonWithoutFusedLora(refused, undefined), null);
    assert.equal(addonWithoutFusedLora(new OrtNativeError("out of memory"), "shrink-expand"), null);
    assert.equal(addonWithoutFusedLora(new Error(refused.message), "shrink-expand"), null);
  });

  it("onnxruntime-node asked for never loads the addon", () => {
    const r = chooseBackend("onnxruntime-node", "cuda", { profiling: false }, () => assert.fail("loaded"));
    assert.deepEqual(r, ok({ backend: "onnxruntime-node", reason: "asked for" }));
  });
});

// `gc` for the collection test, as `--expose-gc` would give it.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

describe("DecoderSession on ort-native (CPU EP) against onnxruntime-node", { skip: ortNativeSkip() }, () => {
  let native: TinyModel;
  let stock: TinyModel;
  before(async () => {
    native = await loadTinyModel("ops", "ort-native");
    stock = await loadTinyModel("ops", "onnxruntime-node");
  });
  after(async () => {
    await native?.dispose();
    await stock?.dispose();
  });

  /** Logits of a prefill and `steps` decode steps of fixed tokens. */
  const decode = (session: DecoderSession, feeds: LoraFeeds, steps: number) =>
    decodeFixedTokens(session, feeds, [5, 9, 200, 17, 3], steps);

  it("runs the full graph with the cache in device tensors, and gives the stock binding's logits", async () => {
    assert.equal(native.session.backend, "ort-native");
    assert.equal(native.session.backendReason, "ort-native on cpu");
    assert.match(native.session.graphPath, /model\.onnx$/);
    const out = await native.session.step(prefillStep([1, 2, 3]), native.lora);
    assert.ok(out.present.keys.every((k) => k instanceof DeviceTensor));
    const { numKvHeads, headDim } = native.session.manifest.dims;
    assert.deepEqual((out.present.keys[0] as DeviceTensor).dims, [1, numKvHeads, 3, headDim]);
    const host = await native.session.toHost(out.present);
    assert.ok(
      host.keys.every((k) => !(k instanceof DeviceTensor)),
      "toHost downloads",
    );
    assert.throws(
      () => (out.present.keys[0] as DeviceTensor).download(),
      /released/,
      "toHost freed the device cache",
    );
    const [a, b] = [await decode(native.session, native.lora, 6), await decode(stock.session, stock.lora, 6)];
    let worst = 0;
    for (const [i, row] of a.entries())
      for (const [j, v] of row.entries()) worst = Math.max(worst, Math.abs(v - (b[i]?.[j] ?? 0)));
    assert.equal(a.length, 7);
    assert.ok(worst < 1e-5, `ort-native logits differ from onnxruntime-node's by ${worst}`);
  });

  it("copies nothing on the CPU, and reports factors resident", () => {
    assert.deepEqual(native.session.decodeCopies(1, 16, native.lora), []);
  });

  it("uploads an adapter's factors once, and frees them once its feeds are collected", async () => {
    const { session } = native;
    const before = session.residentFactors();
    assert.ok(before !== null);
    // A fresh feeds object (the adapter's tensors), unreachable once this function returns;
    // prepare's packing is keyed weakly by it too.
    const use = async () => {
      const feeds = { ...native.lora };
      await decode(session, feeds, 4);
      await decode(session, feeds, 2);
    };
    await use();
    await use();
    const mid = session.residentFactors();
    assert.equal(mid?.uploaded, before.uploaded + 2, "one upload per feeds object, not per step");
    let now: ResidentCounts | null = mid;
    for (let i = 0; i < 50 && (now?.freed ?? 0) < before.freed + 2; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
      now = session.residentFactors();
    }
    assert.equal(now?.freed, before.freed + 2, "both adapters' device factors freed after collection");
  });

  it("refuses cudaTf32 off cuda, and ort-native asked for where the addon is missing", async () => {
    const dir = dirname(native.session.graphPath);
    await assert.rejects(DecoderSession.load(dir, { cudaTf32: false }), RangeError);
    if (process.env.NVIDIA_TF32_OVERRIDE !== "0") {
      // Decided before any CUDA session is made, so it holds on a machine without CUDA.
      const stock = await DecoderSession.load(dir, {
        executionProviders: ["cuda"],
        backend: "onnxruntime-node",
        cudaTf32: false,
      });
      assert.ok(!stock.ok && stock.error instanceof OrtBackendError);
      assert.match(
        stock.error.message,
        /cudaTf32: false needs the ort-native backend \(asked for\) or NVIDIA_TF32_OVERRIDE=0/,
      );
    }
    const saved = process.env.LORACAST_ORT_NATIVE_ADDON;
    process.env.LORACAST_ORT_NATIVE_ADDON = "/nonexistent/ort-native.node";
    try {
      const r = await DecoderSession.load(dir, { backend: "ort-native" });
      assert.ok(!r.ok && r.error instanceof OrtBackendError);
      assert.match(r.error.message, /ort-native not-built: \/nonexistent\/ort-native\.node does not exist/);
      const auto = await DecoderSession.load(dir, { executionProviders: ["cpu"] });
      assert.ok(auto.ok && auto.value.backend === "onnxruntime-node");
      await auto.value.release();
    } finally {
      if (saved === undefined) delete process.env.LORACAST_ORT_NATIVE_ADDON;
      else process.env.LORACAST_ORT_NATIVE_ADDON = saved;
    }
  });
});
