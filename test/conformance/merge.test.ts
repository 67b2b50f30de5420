/**
 * The builder's other outputs against the same PyTorch + PEFT references: a base with the adapter
 * merged into its weights (fp32 and fp16 storage), and the transformers.js layout, which loses the
 * LoRA inputs and returns logits at every position.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { type BaseQuant, buildArtifacts } from "@loracast/shared/model-builder";
import { IO } from "@loracast/shared/model-format";
import { loadModelSpec, type ModelSpec } from "@loracast/shared/model-spec";
import { DecoderSession, disableOrtTelemetry } from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";
import { type Reference, readAdapter, readReference } from "./fixture.ts";
import { referenceStep } from "./measure.ts";
import { maxAbsDiff } from "./metrics.ts";
import { FP32_TOLERANCE } from "./tolerances.ts";

// One session here is created directly, not through createSession.
disableOrtTelemetry();

const FIXTURE = fixture("llama-tiny");
const BASE = join(FIXTURE, "base");

describe("merged and exported bases", () => {
  let work: string;
  let ref: Reference;
  let spec: ModelSpec;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "loracast-merge-"));
    ref = await readReference(FIXTURE);
    const loaded = await loadModelSpec(join(BASE, "config.json"));
    if (!loaded.ok) throw loaded.error;
    spec = loaded.value;
  });
  after(() => rm(work, { recursive: true, force: true }));

  /** Logits at every position of the reference batch, from a merged build with no adapter feeds. */
  async function mergedLogits(quant: BaseQuant): Promise<Float32Array> {
    const outDir = join(work, `merged-${quant.kind}`);
    const built = await buildArtifacts({
      checkpointDir: BASE,
      outDir,
      quant,
      merge: await readAdapter(FIXTURE, spec),
    });
    if (!built.ok) throw built.error;
    assert.deepEqual(built.value.modules, [], "a merged base offers no LoRA slots");
    const session = await DecoderSession.load(outDir);
    if (!session.ok) throw session.error;
    try {
      const out = await session.value.step(referenceStep(ref), {});
      return out.logits;
    } finally {
      await session.value.release();
    }
  }

  it("fp32 with the adapter merged equals PEFT's LoRA logits", async () => {
    const logits = await mergedLogits({ kind: "fp32" });
    const e = maxAbsDiff(logits, ref.logitsLora);
    assert.ok(e <= FP32_TOLERANCE, `max abs ${e}`);
  });

  it("fp16 storage with the adapter merged stays within half precision of them", async () => {
    const logits = await mergedLogits({ kind: "fp16" });
    const e = maxAbsDiff(logits, ref.logitsLora);
    assert.ok(e > 0 && e <= 5e-3, `max abs ${e}`);
  });

  it("the transformers.js layout loads by its own names and equals the base logits", async () => {
    const outDir = join(work, "tjs");
    const built = await buildArtifacts({
      checkpointDir: BASE,
      outDir,
      quant: { kind: "fp32" },
      format: "transformers.js",
    });
    if (!built.ok) throw built.error;
    const session = await ort.InferenceSession.create(join(outDir, "onnx", "model.onnx"));
    try {
      const { batch, seq } = ref;
      const { numLayers, numKvHeads, headDim } = built.value.dims;
      const feeds: Record<string, ort.Tensor> = {
        [IO.inputIds]: new ort.Tensor("int64", ref.inputIds, [batch, seq]),
        [IO.attentionMask]: new ort.Tensor("int64", ref.attentionMask, [batch, seq]),
        [IO.positionIds]: new ort.Tensor("int64", ref.positionIds, [batch, seq]),
      };
      for (let l = 0; l < numLayers; l++)
        for (const name of [IO.pastKey(l), IO.pastValue(l)])
          feeds[name] = new ort.Tensor("float32", new Float32Array(0), [batch, numKvHeads, 0, headDim]);
      assert.deepEqual(new Set(session.inputNames), new Set(Object.keys(feeds)));
      const out = await session.run(feeds);
      const e = maxAbsDiff(out[IO.logits]?.data as Float32Array, ref.logitsBase);
      assert.ok(e <= FP32_TOLERANCE, `max abs ${e}`);
    } finally {
      await session.release();
    }
  });
});
