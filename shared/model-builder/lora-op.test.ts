/**
 * `loraOp: "shrink-expand"` (`LoraOp`): on a 4-bit base, the generation graphs with LoRA inputs get
 * one `ai.loracast` `MatMulNBitsLora` node per targeted projection in place of its `MatMulNBits`
 * and the branch's two Gemms (a float base gets one `LoraShrinkExpand` per branch instead of the
 * Gemms: `shared/runtime/lora-op.test.ts`); every other file is what a `gemm` build writes. Running the fused graphs is the ort-native addon's
 * (`shared/runtime/lora-op.test.ts`).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import * as ort from "onnxruntime-node";
import {
  LORA_SHRINK_EXPAND,
  MATMUL_NBITS_LORA,
  type ModelManifest,
  readModelManifest,
} from "../model-format/index.ts";
import { verifyAdapterFiles } from "../model-spec/index.ts";
import { countGraphNodes } from "../onnx/index.ts";
import { disableOrtTelemetry } from "../runtime/index.ts";
import { type BaseQuant, buildArtifacts, countDecodeStepNodes, parseArchitecture } from "./index.ts";

// This test creates an ORT session itself, not through createSession.
disableOrtTelemetry();

const LLAMA = fixture("llama-tiny");
const work = mkdtempSync(join(tmpdir(), "loracast-lora-op-"));
after(() => rmSync(work, { recursive: true, force: true }));

const int4: BaseQuant = { kind: "nbits", bits: 4, blockSize: 32, emulate: false };
const file = (dir: string, name: string) => readFileSync(join(dir, name));
const ops = (dir: string, name: string) => countGraphNodes(new Uint8Array(file(dir, name))).byOp;

describe("a shrink-expand build of llama-tiny (int4, GroupQueryAttention)", () => {
  const dirs = { gemm: join(work, "gemm"), fused: join(work, "shrink-expand") };
  const manifests: Partial<Record<keyof typeof dirs, ModelManifest>> = {};
  before(async () => {
    for (const loraOp of ["gemm", "shrink-expand"] as const) {
      const dir = loraOp === "gemm" ? dirs.gemm : dirs.fused;
      const built = await buildArtifacts({
        checkpointDir: join(LLAMA, "base"),
        outDir: dir,
        quant: int4,
        attention: "gqa",
        loraOp,
      });
      assert.ok(built.ok);
      const read = await readModelManifest(dir);
      assert.ok(read.ok, read.ok ? "" : read.error.message);
      assert.deepEqual(read.value.manifest, built.value, "the manifest round-trips");
      manifests[loraOp === "gemm" ? "gemm" : "fused"] = read.value.manifest;
    }
  });

  it("records decoder.loraOp only when not gemm", () => {
    assert.equal(manifests.fused?.decoder.loraOp, "shrink-expand");
    assert.ok(manifests.gemm !== undefined && !("loraOp" in manifests.gemm.decoder));
  });

  it("has one MatMulNBitsLora per packed module and layer where the gemm graphs have a MatMulNBits and two Gemms", () => {
    const layers = manifests.fused?.dims.numLayers ?? 0;
    const fusedOp = MATMUL_NBITS_LORA.opType;
    for (const graph of ["model.onnx", "model.append.onnx"]) {
      const fused = ops(dirs.fused, graph);
      const gemm = ops(dirs.gemm, graph);
      assert.equal(fused.get(fusedOp), 4 * layers, graph);
      assert.equal(fused.get(LORA_SHRINK_EXPAND.opType), undefined, graph);
      assert.equal(gemm.get(fusedOp), undefined, graph);
      // int4: every base projection is a MatMulNBits, so every Gemm is a LoRA one.
      assert.equal(gemm.get("Gemm"), 8 * layers, graph);
      assert.equal(fused.get("Gemm") ?? 0, 0, graph);
      // The LM head's MatMulNBits stays (it has no LoRA pair).
      assert.equal(fused.get("MatMulNBits"), (gemm.get("MatMulNBits") ?? 0) - 4 * layers, graph);
      const rest = (m: Map<string, number>) =>
        [...m].filter(([op]) => op !== "Gemm" && op !== fusedOp && op !== "MatMulNBits").sort();
      assert.deepEqual(rest(fused), rest(gemm), `${graph}: the other nodes are the same`);
    }
  });

  it("writes the training graph, the base graphs and the weights byte for byte as a gemm build does", () => {
    for (const name of ["train.onnx", "model.base.onnx", "model.base.append.onnx", "model.onnx.data"])
      assert.ok(file(dirs.fused, name).equals(file(dirs.gemm, name)), name);
    // The domain (its nodes and its opset import) is only in the graphs that use it.
    const domain = LORA_SHRINK_EXPAND.domain;
    for (const name of ["model.onnx", "model.append.onnx", "train.onnx", "model.base.onnx"])
      assert.ok(!file(dirs.gemm, name).includes(domain), `gemm ${name}`);
    assert.ok(!file(dirs.fused, "train.onnx").includes(domain));
    assert.ok(file(dirs.fused, "model.onnx").includes(domain));
  });

  it("is refused by onnxruntime-node at load, naming the op: why the manifest needs no schema bump", async () => {
    await assert.rejects(
      ort.InferenceSession.create(join(dirs.fused, "model.onnx")),
      /MatMulNBitsLora|ai\.loracast/,
    );
  });

  it("adds no node for LoRA to a decode step (countDecodeStepNodes)", () => {
    const arch = parseArchitecture(JSON.parse(file(join(LLAMA, "base"), "config.json").toString("utf8")));
    assert.ok(arch.ok);
    const layers = arch.value.dims.numLayers;
    const graph = { attention: "gqa" } as const;
    const gemm = countDecodeStepNodes(arch.value, int4, "fused", graph);
    const fused = countDecodeStepNodes(arch.value, int4, "fused", { ...graph, loraOp: "shrink-expand" });
    const base = countDecodeStepNodes(arch.value, int4, "fused", { ...graph, lora: false });
    assert.equal(gemm.lora, 8 * layers);
    assert.equal(fused.lora, 0);
    assert.equal(fused.total, base.total);
    assert.equal(fused.byOp[MATMUL_NBITS_LORA.opType], 4 * layers);
    // As written to the file.
    const written = [...ops(dirs.fused, "model.onnx").values()].reduce((a, b) => a + b, 0);
    assert.equal(written, fused.total);
  });

  it("refuses shrink-expand without LoRA inputs (merged, transformers.js) or with another LoRA form", async () => {
    const read = await readModelManifest(dirs.gemm);
    assert.ok(read.ok);
    const checked = verifyAdapterFiles(
      read.value.spec,
      file(join(LLAMA, "adapter"), "adapter_config.json").toString("utf8"),
      file(join(LLAMA, "adapter"), "adapter_model.safetensors"),
    );
    assert.ok(checked.ok);
    const options = { checkpointDir: join(LLAMA, "base"), outDir: join(work, "refused"), quant: int4 };
    await assert.rejects(
      buildArtifacts({ ...options, loraOp: "shrink-expand", merge: checked.value.verified }),
      /loraOp shrink-expand needs LoRA inputs: not with merge/,
    );
    await assert.rejects(
      buildArtifacts({ ...options, loraOp: "shrink-expand", format: "transformers.js" }),
      /not with the transformers\.js format/,
    );
    // Its node takes lora_A as PEFT's [r, in] and computes the whole branch: no other first-product form.
    await assert.rejects(
      buildArtifacts({ ...options, loraOp: "shrink-expand", loraForm: "mulsum" }),
      /loraOp shrink-expand takes lora_A as PEFT's \[r, in\]: not with loraForm mulsum/,
    );
  });
});
