import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { buildModelSpec, type DecoderDims, loadModelSpec, PACKED_MODULES } from "../model-spec/index.ts";
import { MODEL_MANIFEST, type ModelManifest, readModelManifest } from "./index.ts";

const work = mkdtempSync(join(tmpdir(), "loracast-model-format-"));
after(() => rmSync(work, { recursive: true, force: true }));

const base = await loadModelSpec(LLAMA_CONFIG);
assert.ok(base.ok);
const dims: DecoderDims = base.value.dims;

/** A manifest as the builder writes it for llama-tiny, without the graphs (the reader opens none). */
function manifest(over: Partial<ModelManifest> = {}): ModelManifest {
  return {
    schema: "loracast-model/2",
    fingerprint: `sha256:${"a".repeat(64)}`,
    architecture: dims.modelType,
    dims,
    quant: { kind: "fp32" },
    rope: { type: "default", theta: 10000 },
    rmsNormEps: 1e-6,
    maxPositions: 256,
    bosTokenId: null,
    eosTokenIds: [2],
    files: { model: "model.onnx", data: "model.onnx.data" },
    modules: [...buildModelSpec(dims).modules.values()].map(({ name, inFeatures, outFeatures }) => ({
      name,
      inFeatures,
      outFeatures,
    })),
    decoder: {
      layout: "fused",
      packedModules: PACKED_MODULES.map((p) => ({ ...p, modules: [...p.modules] })),
    },
    ...over,
  };
}

let dirs = 0;
function write(content: unknown): string {
  const dir = join(work, String(dirs++));
  mkdirSync(dir);
  writeFileSync(join(dir, MODEL_MANIFEST), typeof content === "string" ? content : JSON.stringify(content));
  return dir;
}

describe("readModelManifest", () => {
  it("gives the base's module-map fingerprint, the one a trainer with only config.json stamps", async () => {
    const read = await readModelManifest(write(manifest()));
    assert.ok(read.ok);
    assert.match(read.value.spec.fingerprint, /^spec-sha256:[0-9a-f]{64}$/);
    assert.equal(read.value.spec.fingerprint, base.value.fingerprint);
    // The artifacts' own digest stays in the manifest, apart (it names these files, not the base).
    assert.equal(read.value.manifest.fingerprint, `sha256:${"a".repeat(64)}`);
  });

  it("gives two builds of one base (other quantization, other digest) the same base fingerprint", async () => {
    const fp32 = await readModelManifest(write(manifest()));
    const int4 = await readModelManifest(
      write(manifest({ fingerprint: `sha256:${"b".repeat(64)}`, quant: { kind: "int4", bits: 4 } })),
    );
    assert.ok(fp32.ok && int4.ok);
    assert.notEqual(fp32.value.manifest.fingerprint, int4.value.manifest.fingerprint);
    assert.equal(fp32.value.spec.fingerprint, int4.value.spec.fingerprint);
  });

  it("gives a merged base (no LoRA inputs) an empty module map", async () => {
    const read = await readModelManifest(write(manifest({ modules: [] })));
    assert.ok(read.ok);
    assert.equal(read.value.spec.modules.size, 0);
    assert.equal(read.value.spec.fingerprint, base.value.fingerprint);
  });

  it("refuses a module map other than its dims imply", async () => {
    const m = manifest();
    const first = m.modules[0];
    assert.ok(first);
    const read = await readModelManifest(
      write({ ...m, modules: [{ ...first, outFeatures: first.outFeatures + 1 }, ...m.modules.slice(1)] }),
    );
    assert.ok(!read.ok);
    assert.match(read.error.message, /module map does not match its dims/);
  });

  it("refuses a digest that is not sha256, naming the field", async () => {
    const read = await readModelManifest(write(manifest({ fingerprint: `spec-sha256:${"a".repeat(64)}` })));
    assert.ok(!read.ok);
    assert.match(read.error.message, /fingerprint/);
  });

  it("refuses artifacts of the per-module builder (schema 1) with a rebuild error", async () => {
    const { decoder: _, ...old } = manifest();
    const read = await readModelManifest(write({ ...old, schema: "loracast-model/1" }));
    assert.ok(!read.ok);
    assert.match(read.error.message, /older model builder.*rebuild the model \(npm run build-model\)/);
  });

  it("refuses packed modules other than the runtime's", async () => {
    const m = manifest();
    const packedModules = m.decoder.packedModules.map((p, i) =>
      i === 0 ? { ...p, modules: ["self_attn.q_proj"] } : p,
    );
    const read = await readModelManifest(write({ ...m, decoder: { ...m.decoder, packedModules } }));
    assert.ok(!read.ok);
    assert.match(read.error.message, /decoder\.packedModules: packed modules other than this runtime's/);
  });

  it("reads decoder.loraOp (absent: gemm, as before it) and refuses an unknown one, naming the field", async () => {
    const m = manifest();
    const fused = await readModelManifest(
      write({ ...m, decoder: { ...m.decoder, loraOp: "shrink-expand" } }),
    );
    assert.ok(fused.ok);
    assert.equal(fused.value.manifest.decoder.loraOp, "shrink-expand");
    const old = await readModelManifest(write(m));
    assert.ok(old.ok);
    assert.equal(old.value.manifest.decoder.loraOp, undefined);
    const bad = await readModelManifest(write({ ...m, decoder: { ...m.decoder, loraOp: "punica" } }));
    assert.ok(!bad.ok);
    assert.match(bad.error.message, /^loracast-model\.json: decoder\.loraOp: /);
    const formed = await readModelManifest(
      write({ ...m, decoder: { ...m.decoder, loraOp: "shrink-expand", loraForm: "mulsum" } }),
    );
    assert.ok(!formed.ok);
    assert.match(
      formed.error.message,
      /decoder\.loraOp: loraOp shrink-expand is built with loraForm gemm only/,
    );
  });

  it("refuses a folder without a manifest, naming the path", async () => {
    const read = await readModelManifest(join(work, "none"));
    assert.ok(!read.ok);
    assert.match(read.error.message, /cannot read .*loracast-model\.json/);
    // A relative folder is named as given and as resolved (a service under npm -w runs in its own).
    const relative = await readModelManifest(join("no-such-model-dir", "x"));
    assert.ok(!relative.ok);
    assert.ok(
      relative.error.message.startsWith(
        `cannot read ${join("no-such-model-dir", "x", "loracast-model.json")} (relative to the working directory: ${resolve("no-such-model-dir", "x", "loracast-model.json")}): ENOENT`,
      ),
      relative.error.message,
    );
  });
});
