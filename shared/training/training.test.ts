import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DEMO_BASE_CONFIG } from "@loracast/dev-support/fixtures";
import { buildDemoModel } from "@loracast/dev-support/models";
import { buildModelSpec, parseDecoderDims, peftKey, verifyAdapterFiles } from "../model-spec/index.ts";
import { parseLoraConfig } from "../peft/index.ts";
import { createRng } from "../random/index.ts";
import { LoraParams, packBatch, TrainingSession } from "./index.ts";

const dims = parseDecoderDims(JSON.parse(readFileSync(DEMO_BASE_CONFIG, "utf8")));
assert.ok(dims.ok);
const spec = buildModelSpec(dims.value);
const config = (raw: Record<string, unknown>) => {
  const c = parseLoraConfig({ peft_type: "LORA", ...raw });
  assert.ok(c.ok);
  return c.value;
};

describe("packBatch", () => {
  it("right-pads and scores the positions that predict completion tokens", () => {
    const { batch, tokens } = packBatch([
      { prompt: [5, 6], completion: [7, 8, 9] },
      { prompt: [4], completion: [3], masked: true },
    ]);
    assert.equal(batch.seq, 5);
    assert.deepEqual([...batch.inputIds].map(Number), [5, 6, 7, 8, 9, 4, 3, 0, 0, 0]);
    assert.deepEqual([...batch.attentionMask].map(Number), [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    assert.deepEqual([...batch.positionIds].map(Number), [0, 1, 2, 3, 4, 0, 1, 0, 0, 0]);
    // row 0 positions 1, 2, 3 predict 7, 8, 9; row 1 position 0 predicts 3
    assert.deepEqual([...batch.rows].map(Number), [1, 2, 3, 5]);
    assert.deepEqual([...batch.targets].map(Number), [7, 8, 9, 3]);
    assert.deepEqual([...tokens.seq], [0, 0, 0, 1]);
    assert.deepEqual([...tokens.mask], [1, 1, 1, 0]);
  });
  it("refuses empty prompts or completions", () => {
    assert.throws(() => packBatch([{ prompt: [], completion: [1] }]), /sample 0/);
    assert.throws(() => packBatch([]), RangeError);
  });
});

describe("LoraParams", () => {
  const lora = config({ r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"], use_rslora: true });

  it("initialises as PEFT: A uniform within 1/√in, B zero, only targeted modules", () => {
    const p = LoraParams.init(spec, lora, createRng(1));
    assert.equal(p.modules.length, 2 * dims.value.numLayers);
    for (const m of p.modules) {
      assert.match(m.module, /(q_proj|v_proj)$/);
      assert.equal(m.scaling, 8 / Math.sqrt(4));
      assert.ok(m.a.every((x) => Math.abs(x) <= 1 / Math.sqrt(m.inFeatures)));
      assert.ok(m.a.some((x) => x !== 0));
      assert.ok(m.b.every((x) => x === 0));
    }
  });

  it("feeds scaling·B, and turns graph gradients into parameter gradients (dB × scaling)", () => {
    const p = LoraParams.init(spec, lora, createRng(2));
    const m = p.modules[0];
    assert.ok(m !== undefined);
    m.b.fill(0.5);
    const feeds = p.feeds();
    assert.equal((feeds[peftKey(m.module, "B")] as { data: Float32Array }).data[0], 0.5 * m.scaling);
    assert.deepEqual(feeds["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"]?.dims, [0, 64]);
    const graph = new Map<string, Float32Array>();
    for (const mm of p.modules) {
      graph.set(peftKey(mm.module, "A"), new Float32Array(mm.a.length).fill(1));
      graph.set(peftKey(mm.module, "B"), new Float32Array(mm.b.length).fill(1));
    }
    const once = p.gradients(graph);
    assert.equal(once.get(peftKey(m.module, "A"))?.[0], 1);
    assert.equal(once.get(peftKey(m.module, "B"))?.[0], m.scaling);
    p.gradients(graph, once);
    assert.equal(once.get(peftKey(m.module, "B"))?.[0], 2 * m.scaling, "accumulates into the given map");
  });

  it("serializes as a PEFT adapter that verifies against the base and loads back equal", () => {
    const p = LoraParams.init(spec, lora, createRng(3));
    for (const m of p.modules) m.b.fill(0.25);
    const { configBytes, weights } = p.toPeft();
    const checked = verifyAdapterFiles(spec, new TextDecoder().decode(configBytes), weights);
    assert.ok(checked.ok, checked.ok ? "" : checked.error);
    const back = LoraParams.fromAdapter(spec, checked.value.config, checked.value.verified);
    assert.deepEqual(
      back.modules.map((m) => [m.module, m.scaling, [...m.a], [...m.b]]),
      p.modules.map((m) => [m.module, m.scaling, [...m.a], [...m.b]]),
    );
  });

  it("refuses a config that targets nothing in the base", () => {
    assert.throws(
      () => LoraParams.init(spec, config({ target_modules: ["nope"] }), createRng(1)),
      /targets no module/,
    );
  });
});

describe("TrainingSession", () => {
  it("scores with the backward branch off: the same log-probabilities, no gradients fetched", async () => {
    const work = mkdtempSync(join(tmpdir(), "loracast-session-"));
    try {
      const modelDir = await buildDemoModel(
        { checkpointDir: join(work, "base"), modelDir: join(work, "model") },
        5,
      );
      const session = await TrainingSession.load(modelDir);
      assert.ok(session.ok);
      const p = LoraParams.init(
        spec,
        config({ r: 4, lora_alpha: 8, target_modules: "all-linear" }),
        createRng(4),
      );
      const { batch, tokens } = packBatch([
        { prompt: [5, 6, 7], completion: [8, 9] },
        { prompt: [10], completion: [11, 12, 13] },
      ]);
      const scored = await session.value.score(batch, p.feeds());
      const seeds = Float32Array.from(tokens.seq, (_, i) => 0.1 * (i + 1));
      const out = await session.value.backward(batch, p.feeds(), seeds);
      assert.deepEqual([...scored], [...out.logprobs]);
      assert.equal(out.grads.size, p.named().size);
      for (const [key, grad] of out.grads) {
        assert.equal(grad.length, p.named().get(key)?.length, key);
      }
      // B starts at zero, so dA is zero and dB is not: the gradient flows.
      assert.ok([...out.grads].some(([k, g]) => k.includes("lora_B") && g.some((v) => v !== 0)));
      await session.value.release();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
