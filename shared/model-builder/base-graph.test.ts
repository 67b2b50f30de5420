/**
 * The decoders without LoRA inputs that `buildArtifacts` writes beside the LoRA ones
 * (`model.base.onnx`, `model.base.append.onnx`): what a base-only request runs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import * as ort from "onnxruntime-node";
import { type ModelManifest, readModelManifest } from "../model-format/index.ts";
import { countGraphNodes } from "../onnx/index.ts";
import { disableOrtTelemetry } from "../runtime/index.ts";
import { type BaseQuant, buildArtifacts, countDecodeStepNodes, parseArchitecture } from "./index.ts";

// These tests create ORT sessions themselves, not through createSession.
disableOrtTelemetry();

const LLAMA = join(fixture("llama-tiny"), "base");
const work = mkdtempSync(join(tmpdir(), "loracast-base-graph-"));
after(() => rmSync(work, { recursive: true, force: true }));

const nodes = (dir: string, file: string) => {
  const { byOp } = countGraphNodes(new Uint8Array(readFileSync(join(dir, file))));
  return [...byOp.values()].reduce((a, b) => a + b, 0);
};

for (const [name, quant, attention] of [
  ["fp32, ops attention", { kind: "fp32" }, "ops"],
  ["int4, GroupQueryAttention", { kind: "nbits", bits: 4, blockSize: 32, emulate: false }, "gqa"],
] as const satisfies readonly (readonly [string, BaseQuant, "ops" | "gqa"])[]) {
  describe(`base graphs of llama-tiny (${name})`, () => {
    const dir = join(work, attention);
    let manifest: ModelManifest;
    before(async () => {
      const built = await buildArtifacts({ checkpointDir: LLAMA, outDir: dir, quant, attention });
      assert.ok(built.ok);
      const read = await readModelManifest(dir);
      assert.ok(read.ok);
      manifest = read.value.manifest;
    });

    it("are listed in the manifest and have exactly the LoRA graphs' nodes minus the LoRA ones", () => {
      assert.equal(manifest.files.base, "model.base.onnx");
      assert.equal(manifest.files.baseAppend, "model.base.append.onnx");
      const arch = parseArchitecture(JSON.parse(readFileSync(join(LLAMA, "config.json"), "utf8")));
      assert.ok(arch.ok);
      const withLora = countDecodeStepNodes(arch.value, quant, "fused", { attention });
      const without = countDecodeStepNodes(arch.value, quant, "fused", { attention, lora: false });
      // Two per packed module (qkv, o, gate_up, down) and layer.
      assert.equal(withLora.lora, 2 * 4 * arch.value.dims.numLayers);
      assert.equal(without.lora, 0);
      assert.equal(without.total, withLora.total - withLora.lora);
      // The files as written: the same counts, for the append graphs too.
      assert.equal(nodes(dir, "model.onnx"), withLora.total);
      assert.equal(nodes(dir, "model.base.onnx"), without.total);
      assert.equal(nodes(dir, "model.base.append.onnx"), nodes(dir, "model.append.onnx") - withLora.lora);
    });

    it("take no LoRA input, and load over the LoRA graphs' data file (their only weights)", async () => {
      for (const file of ["model.base.onnx", "model.base.append.onnx"]) {
        const session = await ort.InferenceSession.create(join(dir, file));
        try {
          assert.deepEqual(
            session.inputNames.filter((n) => n.includes("lora_")),
            [],
          );
          assert.ok(session.inputNames.includes("input_ids"));
        } finally {
          await session.release();
        }
      }
    });

    it("leave the artifacts' digest as builds before them wrote it (decoder, append graph, data)", () => {
      const hash = createHash("sha256");
      for (const file of ["model.onnx", "model.append.onnx", "model.onnx.data"])
        hash.update(readFileSync(join(dir, file)));
      assert.equal(manifest.fingerprint, `sha256:${hash.digest("hex")}`);
    });
  });
}
