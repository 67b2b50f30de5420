/**
 * Decoders built with `loraOp: "shrink-expand"` (one `ai.loracast` `LoraShrinkExpand` node per LoRA
 * branch at fp32; at int4 one `MatMulNBitsLora` per targeted projection, its base and branch
 * together) on the ort-native addon's CPU session, against the same fixture built with the two Gemms
 * (`gemm`) on the same binding: both shared fixtures, fp32 and int4, with the fixture's PEFT adapter
 * and with base feeds (rank-0 factors, which the CPU runs on the LoRA graph: `chooseBaseGraph`).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { ortNativeSkip } from "@loracast/dev-support/ort-native";
import { decodeFixedTokens } from "@loracast/dev-support/tiny-model";
import { type BaseQuant, buildArtifacts } from "../model-builder/index.ts";
import type { LoraOp } from "../model-format/index.ts";
import { verifyAdapterFiles } from "../model-spec/index.ts";
import { DecoderSession } from "./decoder-session.ts";
import { adapterFeeds, baseFeeds, type LoraFeeds } from "./lora-feeds.ts";
import { OrtBackendError } from "./native-decoder.ts";

const work = mkdtempSync(join(tmpdir(), "loracast-lora-op-"));
after(() => rmSync(work, { recursive: true, force: true }));

const QUANTS: Record<"fp32" | "int4", BaseQuant> = {
  fp32: { kind: "fp32" },
  int4: { kind: "nbits", bits: 4, blockSize: 32, emulate: false },
};
/**
 * Largest |difference| allowed between the two forms' logits: both compute `y + (x · Aᵀ) · Bᵀ` in
 * float32, in another summation order at most (the fixtures' logits are O(1), so this is ~100 ulps).
 */
const TOLERANCE = 1e-5;

/** The fixture built with `loraOp` into its own directory, and loaded on the addon (`backend` `auto`). */
async function load(name: "llama-tiny" | "qwen2-tiny", quant: "fp32" | "int4", loraOp: LoraOp) {
  const dir = join(work, `${name}-${quant}-${loraOp}`);
  const built = await buildArtifacts({
    checkpointDir: join(fixture(name), "base"),
    outDir: dir,
    quant: QUANTS[quant],
    loraOp,
  });
  assert.ok(built.ok);
  // The gemm model needs the addon asked for (`auto` is the stock binding on the CPU); the fused one
  // gets it from `auto`.
  const loaded = await DecoderSession.load(dir, { backend: loraOp === "gemm" ? "ort-native" : "auto" });
  assert.ok(loaded.ok, loaded.ok ? "" : loaded.error.message);
  const session = loaded.value;
  const adapter = join(fixture(name), "adapter");
  const checked = verifyAdapterFiles(
    session.spec,
    readFileSync(join(adapter, "adapter_config.json"), "utf8"),
    readFileSync(join(adapter, "adapter_model.safetensors")),
  );
  assert.ok(checked.ok);
  return {
    dir,
    session,
    lora: adapterFeeds(session.spec, checked.value.verified),
    base: baseFeeds(session.spec),
  };
}

/** Largest |a - b| over every step's logits. */
function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (const [i, row] of a.entries()) {
    const other = b[i];
    assert.ok(other !== undefined && other.length === row.length);
    for (const [j, v] of row.entries()) worst = Math.max(worst, Math.abs(v - (other[j] ?? Number.NaN)));
  }
  return worst;
}

describe("shrink-expand decoders on ort-native (CPU EP) against the gemm ones", {
  skip: ortNativeSkip(),
}, () => {
  for (const name of ["llama-tiny", "qwen2-tiny"] as const) {
    for (const quant of ["fp32", "int4"] as const) {
      it(`${name} ${quant}: the same logits with the adapter and with base feeds`, async (t) => {
        const gemm = await load(name, quant, "gemm");
        const fused = await load(name, quant, "shrink-expand");
        try {
          assert.equal(fused.session.backend, "ort-native");
          assert.equal(fused.session.backendReason, "auto on cpu: the model's LoRA op is shrink-expand");
          assert.match(fused.session.graphPath, /model\.onnx$/);
          assert.equal(
            fused.session.baseGraph.graphPath,
            null,
            "base requests run the LoRA graph on the CPU",
          );
          const decode = (s: DecoderSession, feeds: LoraFeeds) =>
            decodeFixedTokens(s, feeds, [5, 9, 200, 17, 3], 4);
          const lora = [
            await decode(fused.session, fused.lora),
            await decode(gemm.session, gemm.lora),
          ] as const;
          const base = [
            await decode(fused.session, fused.base),
            await decode(gemm.session, gemm.base),
          ] as const;
          const dLora = maxDiff(...lora);
          const dBase = maxDiff(...base);
          t.diagnostic(`max |logit difference|: with the adapter ${dLora}, with base feeds ${dBase}`);
          assert.ok(dLora <= TOLERANCE, `with the adapter, the forms' logits differ by ${dLora}`);
          assert.ok(dBase <= TOLERANCE, `with base feeds, the forms' logits differ by ${dBase}`);
          // The adapter changes the logits: a fused node that dropped its branch would fail above.
          assert.ok(maxDiff(lora[0], base[0]) > 100 * TOLERANCE, "the adapter had no effect");
          assert.deepEqual(fused.session.stepCounts(), { lora: 10, base: 0 });
        } finally {
          await fused.session.release();
          await gemm.session.release();
        }
      });
    }
  }

  it("refuses the stock binding for a shrink-expand model, before creating any session", async () => {
    const dir = join(work, "llama-tiny-fp32-shrink-expand");
    const r = await DecoderSession.load(dir, { backend: "onnxruntime-node" });
    assert.ok(!r.ok && r.error instanceof OrtBackendError);
    assert.match(r.error.message, /use backend auto or ort-native; rebuild the model with --lora-op gemm/);
  });
});
