import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bytesPerToken, type DecodeStepShape, decodeStepCopies, kvPlacement } from "./device-copies.ts";

// Qwen2.5-0.5B's cache dims; a LoRA r=16 on all seven projections is 168 factor pairs, 35 MB.
const qwen = (ep: DecodeStepShape["ep"], batch: number): DecodeStepShape => ({
  ep,
  kv: kvPlacement(ep),
  batch,
  pastColumns: 192,
  layers: 24,
  kvHeads: 2,
  headDim: 64,
  vocab: 151936,
  factorTensors: 336,
  factorBytes: 35_192_832,
  factorsResident: ep === "webgpu",
  appendGraph: ep !== "webgpu",
  kvCacheDtype: "float32",
});

describe("decode step copies per execution provider", () => {
  it("keeps the cache on the device only on WebGPU", () => {
    assert.equal(kvPlacement("webgpu"), "device");
    assert.equal(kvPlacement("cuda"), "host");
    assert.equal(kvPlacement("cpu"), "host");
  });

  it("copies nothing on the CPU", () => {
    assert.deepEqual(decodeStepCopies(qwen("cpu", 1)), []);
  });

  it("on CUDA sends the whole host cache and every factor each step, and gets the new columns back", () => {
    const copies = decodeStepCopies(qwen("cuda", 1));
    const by = (what: string) => copies.find((c) => c.what === what);
    assert.deepEqual(by("LoRA factors"), {
      what: "LoRA factors",
      tensors: 336,
      direction: "host→device",
      bytes: 35_192_832,
    });
    // 48 tensors of [1, 2, 192, 64] float32
    assert.equal(by("past keys and values")?.bytes, 48 * 192 * 2 * 64 * 4);
    assert.equal(by("appended keys and values")?.bytes, 48 * 2 * 64 * 4);
    assert.equal(by("logits")?.bytes, 151936 * 4);
    assert.equal(copies[0]?.what, "LoRA factors", "largest first");
    const perStep = copies.reduce((n, c) => n + c.bytes, 0);
    // Batch 8 shares the factors: fewer bytes per token.
    assert.equal(bytesPerToken(copies, 1), perStep);
    assert.ok(bytesPerToken(decodeStepCopies(qwen("cuda", 8)), 8) < perStep / 2);
  });

  it("on WebGPU moves only the step's small inputs and the logits once the factors are placed", () => {
    const copies = decodeStepCopies(qwen("webgpu", 8));
    assert.deepEqual(
      copies.map((c) => c.what),
      ["logits", "attention_mask", "input_ids, position_ids, logits_positions"],
    );
    assert.equal(copies.find((c) => c.what === "attention_mask")?.bytes, 8 * 193 * 8);
  });

  it("on CUDA through ort-native moves the same as WebGPU: cache and factors resident", () => {
    const native = { ...qwen("cuda", 8), kv: "device" as const, factorsResident: true, appendGraph: false };
    assert.deepEqual(
      decodeStepCopies(native).map((c) => [c.what, c.bytes]),
      decodeStepCopies(qwen("webgpu", 8)).map((c) => [c.what, c.bytes]),
    );
    assert.deepEqual(decodeStepCopies({ ...native, ep: "cpu" }), [], "ort-native on the CPU copies nothing");
  });

  it("counts the whole present cache coming back when a host cache has no append graph", () => {
    const copies = decodeStepCopies({ ...qwen("cuda", 1), appendGraph: false });
    assert.equal(copies.find((c) => c.what === "present keys and values")?.bytes, 48 * 193 * 2 * 64 * 4);
  });

  it("counts 2 bytes per cache element with a float16 cache", () => {
    const copies = decodeStepCopies({ ...qwen("cuda", 1), kvCacheDtype: "float16" });
    assert.equal(copies.find((c) => c.what === "past keys and values")?.bytes, 48 * 192 * 2 * 64 * 2);
    assert.equal(copies.find((c) => c.what === "appended keys and values")?.bytes, 48 * 2 * 64 * 2);
    assert.equal(copies.find((c) => c.what === "logits")?.bytes, 151936 * 4, "logits stay float32");
  });
});
