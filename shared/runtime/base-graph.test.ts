/**
 * Base-only requests on the decoder graph without LoRA inputs (base-graph.ts): the choice per EP
 * and model, the base mark on feeds, and on llama-tiny, on both bindings, that a base step runs
 * that graph and gives the LoRA graph's rank-0 logits.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ortNativeSkip } from "@loracast/dev-support/ort-native";
import {
  decodeFixedTokens,
  loadTinyModel,
  prefillStep,
  type TinyModel,
} from "@loracast/dev-support/tiny-model";
import { MODEL_MANIFEST, ModelArtifactsError, type ModelManifest } from "../model-format/index.ts";
import { PACKED_MODULES } from "../model-spec/index.ts";
import { createRng } from "../random/index.ts";
import { chooseBaseGraph } from "./base-graph.ts";
import {
  BaseGraphMissingError,
  DecoderSession,
  Engine,
  GREEDY,
  greedyDecode,
  isBaseFeeds,
  type LoraFeeds,
  packLoraFeeds,
} from "./index.ts";

describe("chooseBaseGraph", () => {
  const files = { model: "model.onnx", data: "model.onnx.data", append: "model.append.onnx" };
  const manifest = (more: Partial<ModelManifest["files"]>, modules = 1) =>
    ({
      files: { ...files, ...more },
      modules: Array.from({ length: modules }, () => ({ name: "m", inFeatures: 1, outFeatures: 1 })),
    }) as ModelManifest;
  const built = manifest({ base: "model.base.onnx", baseAppend: "model.base.append.onnx" });
  const old = manifest({});

  it("auto is on for the GPU EPs, off on the cpu; on and off are as asked", () => {
    assert.deepEqual(chooseBaseGraph("auto", "cuda", built, false, "ort-native"), {
      ok: true,
      value: { file: "model.base.onnx", reason: "auto on cuda" },
    });
    // The stock binding on cuda: auto stays off (its kernels there did not all keep float32), on as asked.
    const stockCuda = chooseBaseGraph("auto", "cuda", built, true, "onnxruntime-node");
    assert.ok(stockCuda.ok && stockCuda.value.file === null);
    assert.match(stockCuda.value.reason, /stock binding: base requests run the LoRA graph/);
    const stockCudaOn = chooseBaseGraph("on", "cuda", built, true, "onnxruntime-node");
    assert.ok(stockCudaOn.ok && stockCudaOn.value.file === "model.base.append.onnx");
    // The append graph's counterpart where the session appends (the stock binding's host cache).
    const appending = chooseBaseGraph("auto", "webgpu", built, true, "onnxruntime-node");
    assert.ok(appending.ok && appending.value.file === "model.base.append.onnx");
    assert.deepEqual(chooseBaseGraph("auto", "cpu", built, true, "onnxruntime-node"), {
      ok: true,
      value: { file: null, reason: "auto on cpu" },
    });
    const on = chooseBaseGraph("on", "cpu", built, true, "onnxruntime-node");
    assert.ok(on.ok && on.value.file === "model.base.append.onnx" && on.value.reason === "on: asked for");
    const off = chooseBaseGraph("off", "cuda", built, false, "ort-native");
    assert.ok(off.ok && off.value.file === null);
  });

  it("a model built before base graphs: auto says base requests run rank-0, on is refused", () => {
    const auto = chooseBaseGraph("auto", "cuda", old, false, "ort-native");
    assert.ok(auto.ok && auto.value.file === null);
    assert.match(auto.value.reason, /no files\.base .*rank-0 factors/);
    const on = chooseBaseGraph("on", "cpu", old, true, "onnxruntime-node");
    assert.ok(!on.ok && on.error instanceof BaseGraphMissingError && on.error instanceof ModelArtifactsError);
    assert.match(on.error.message, /files\.baseAppend .*rebuild the model/);
  });

  it("a merged base has no LoRA inputs: nothing to choose", () => {
    const merged = chooseBaseGraph("on", "cuda", manifest({}, 0), false, "ort-native");
    assert.ok(merged.ok && merged.value.file === null);
  });
});

const nativeSkip = ortNativeSkip();
for (const backend of ["onnxruntime-node", "ort-native"] as const) {
  describe(`base requests on the base graph, llama-tiny on ${backend}`, {
    skip: backend === "ort-native" ? nativeSkip : false,
  }, () => {
    let model: TinyModel;
    /** The same artifacts with `baseGraph: "off"`: base requests on the LoRA graph, rank-0. */
    let rankZero: DecoderSession;
    const prompts = [
      [5, 9, 200, 17, 3, 44, 8, 90],
      [7, 7],
      [100, 3, 250, 12, 61],
    ];
    before(async () => {
      model = await loadTinyModel("ops", backend, "float32", "on");
      const off = await DecoderSession.load(dirname(model.session.graphPath), { backend, baseGraph: "off" });
      assert.ok(off.ok);
      rankZero = off.value;
    });
    after(async () => {
      await rankZero?.release();
      await model?.dispose();
    });

    it("marks base feeds and their packed form, not an adapter's or a copy", () => {
      const { session, base, lora } = model;
      assert.ok(isBaseFeeds(base));
      assert.ok(isBaseFeeds(packLoraFeeds(session.spec, PACKED_MODULES, base)));
      assert.ok(!isBaseFeeds(lora));
      assert.ok(!isBaseFeeds({ ...base }), "a spread drops the mark");
      assert.equal(Object.keys(base).length, 2 * session.spec.modules.size, "the mark is no feed");
    });

    it("runs a base step on the base graph with the rank-0 logits, and an adapter's on the LoRA graph", async () => {
      const { session, base, lora } = model;
      assert.match(session.baseGraph.graphPath ?? "", /model\.base(\.append)?\.onnx$/);
      assert.equal(rankZero.baseGraph.graphPath, null);
      /** A prefill and 6 decode steps of fixed tokens: each step's logits. */
      const decode = (s: DecoderSession, feeds: LoraFeeds) =>
        decodeFixedTokens(s, feeds, prompts[0] as number[], 6);
      const before = session.stepCounts();
      const onBase = await decode(session, base);
      const mid = session.stepCounts();
      assert.deepEqual(mid, { lora: before.lora, base: before.base + 7 }, "7 steps on the base graph");
      const reference = await decode(rankZero, base);
      assert.deepEqual(rankZero.stepCounts().base, 0);
      let worst = 0;
      for (const [i, row] of onBase.entries())
        for (const [j, v] of row.entries()) worst = Math.max(worst, Math.abs(v - (reference[i]?.[j] ?? 0)));
      assert.ok(worst <= 1e-6, `base graph logits differ from the rank-0 LoRA graph's by ${worst}`);
      await decode(session, lora);
      assert.deepEqual(
        session.stepCounts(),
        { lora: mid.lora + 7, base: mid.base },
        "an adapter: LoRA graph",
      );
    });

    it("gives the rank-0 greedy tokens", async () => {
      for (const p of prompts)
        assert.deepEqual(
          await greedyDecode(model.session, model.base, p, 12),
          await greedyDecode(rankZero, model.base, p, 12),
        );
    });

    it("the engine serves base and adapter requests at once, each group on its graph", async () => {
      const { session, base, lora } = model;
      const expected = [
        ...(await Promise.all(prompts.map((p) => greedyDecode(rankZero, lora, p, 10)))),
        ...(await Promise.all(prompts.map((p) => greedyDecode(rankZero, base, p, 10)))),
      ];
      const engine = new Engine(session);
      const request = (prompt: number[], feeds: LoraFeeds, key: string, maxTokens = 10) =>
        engine.generate({
          prompt,
          adapter: { key, feeds },
          sampling: GREEDY,
          maxTokens,
          stopTokens: new Set(),
          logprobs: 0,
          rng: createRng(0),
        });
      const before = session.stepCounts();
      // The second base request ends early, so the base group's cache is regrouped mid-run.
      const results = await Promise.all([
        ...prompts.map((p) => request(p, lora, "lora")),
        ...prompts.map((p, i) => request(p, base, "base", i === 1 ? 4 : 10)),
      ]);
      assert.deepEqual(
        results.map((r) => r.tokens.map((t) => t.token)),
        expected.map((tokens, i) => (i === 4 ? tokens.slice(0, 4) : tokens)),
      );
      const now = session.stepCounts();
      // One prefill and 9 decode steps per group: the groups never share a step.
      assert.deepEqual([now.lora - before.lora, now.base - before.base], [10, 10]);
    });
  });
}

describe("a model directory built before base graphs", () => {
  let model: TinyModel;
  const work = mkdtempSync(join(tmpdir(), "loracast-old-model-"));
  before(async () => {
    model = await loadTinyModel();
    cpSync(dirname(model.session.graphPath), work, { recursive: true });
    const path = join(work, MODEL_MANIFEST);
    const manifest = JSON.parse(readFileSync(path, "utf8")) as ModelManifest;
    for (const file of [manifest.files.base, manifest.files.baseAppend]) rmSync(join(work, file ?? ""));
    delete manifest.files.base;
    delete manifest.files.baseAppend;
    writeFileSync(path, JSON.stringify(manifest));
  });
  after(async () => {
    await model?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it("loads with auto and off, base requests on the LoRA graph; on is a load error naming it", async () => {
    for (const baseGraph of ["auto", "off"] as const) {
      const loaded = await DecoderSession.load(work, { baseGraph });
      assert.ok(loaded.ok);
      assert.equal(loaded.value.baseGraph.graphPath, null);
      await loaded.value.step(prefillStep([1, 2, 3]), model.base);
      assert.deepEqual(loaded.value.stepCounts(), { lora: 1, base: 0 });
      await loaded.value.release();
    }
    const on = await DecoderSession.load(work, { baseGraph: "on" });
    assert.ok(!on.ok && on.error instanceof BaseGraphMissingError);
    assert.match(on.error.message, /^baseGraph on: the model has no files\.baseAppend/);
  });
});

describe("a model directory missing a graph file its manifest names", () => {
  let model: TinyModel;
  const work = mkdtempSync(join(tmpdir(), "loracast-partial-model-"));
  before(async () => {
    model = await loadTinyModel();
    cpSync(dirname(model.session.graphPath), work, { recursive: true });
  });
  after(async () => {
    await model?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it("is a load error naming the file (the base graph's with on), not ORT's load failure", async () => {
    const manifest = JSON.parse(readFileSync(join(work, MODEL_MANIFEST), "utf8")) as ModelManifest;
    rmSync(join(work, manifest.files.baseAppend ?? ""));
    const on = await DecoderSession.load(work, { baseGraph: "on" });
    assert.ok(!on.ok && on.error instanceof BaseGraphMissingError);
    assert.match(on.error.message, /^base graph model\.base\.append\.onnx, .* rebuild the model/);
    // off never opens the base graph: it loads.
    const off = await DecoderSession.load(work, { baseGraph: "off" });
    assert.ok(off.ok);
    await off.value.release();
    rmSync(join(work, manifest.files.append ?? ""));
    const lora = await DecoderSession.load(work, { baseGraph: "off" });
    assert.ok(!lora.ok && lora.error instanceof ModelArtifactsError);
    assert.match(lora.error.message, /^model\.append\.onnx, which loracast-model\.json names, is not in/);
  });
});
