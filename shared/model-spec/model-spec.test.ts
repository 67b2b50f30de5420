import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fixture } from "@loracast/dev-support/fixtures";
import { parseLoraConfig } from "../peft/index.ts";
import { decodeSafetensors, encodeSafetensors, type TensorInput } from "../safetensors/index.ts";
import {
  buildModelSpec,
  loadModelSpec,
  type ModelSpec,
  parseDecoderDims,
  verifyAdapter,
  verifyAdapterPairs,
} from "./index.ts";

async function spec(name: "llama-tiny" | "qwen2-tiny"): Promise<ModelSpec> {
  const r = await loadModelSpec(join(fixture(name), "base", "config.json"));
  if (!r.ok) throw r.error;
  return r.value;
}

/** A one-layer base with hidden size 8, for factors small enough to write out. */
function tinySpec(modelType: "llama" | "mistral"): ModelSpec {
  return buildModelSpec({
    modelType,
    hiddenSize: 8,
    intermediateSize: 16,
    numLayers: 1,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 4,
    vocabSize: 10,
    tieWordEmbeddings: false,
  });
}

function adapter(name: "llama-tiny" | "qwen2-tiny") {
  const config = parseLoraConfig(readFileSync(join(fixture(name), "adapter", "adapter_config.json"), "utf8"));
  const file = decodeSafetensors(readFileSync(join(fixture(name), "adapter", "adapter_model.safetensors")));
  if (!config.ok) throw config.error;
  if (!file.ok) throw file.error;
  return { config: config.value, file: file.value };
}

describe("model spec", () => {
  it("maps every projection of the Llama fixture with the shapes its base checkpoint has", async () => {
    const s = await spec("llama-tiny");
    assert.equal(s.modules.size, 2 * 7);
    const base = decodeSafetensors(readFileSync(join(fixture("llama-tiny"), "base", "model.safetensors")));
    assert.ok(base.ok);
    for (const m of s.modules.values()) {
      const w = base.value.tensors.get(`${m.name}.weight`);
      assert.ok(w, m.name);
      assert.deepEqual(w.shape, [m.outFeatures, m.inFeatures], m.name);
    }
  });

  it("gives equal bases equal fingerprints and different bases different ones", async () => {
    const a = await spec("llama-tiny");
    const b = await spec("llama-tiny");
    const c = await spec("qwen2-tiny");
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.fingerprint, c.fingerprint);
  });

  it("names the field of an unsupported architecture or a bad dimension", () => {
    const r = parseDecoderDims({ model_type: "gpt2" });
    assert.equal(r.ok ? "" : r.error.field, "model_type");
    const g = parseDecoderDims({
      model_type: "llama",
      hidden_size: 64,
      num_attention_heads: 4,
      num_key_value_heads: 3,
      intermediate_size: 8,
      num_hidden_layers: 1,
      vocab_size: 8,
    });
    assert.equal(g.ok ? "" : g.error.field, "num_key_value_heads");
  });
});

describe("adapter verification", () => {
  it("accepts each fixture adapter on its own base, with PEFT's scaling", async () => {
    const llama = adapter("llama-tiny");
    const v = verifyAdapter(await spec("llama-tiny"), llama.config, llama.file);
    assert.ok(v.ok);
    assert.equal(v.value.modules.length, 14);
    assert.ok(v.value.modules.every((m) => m.rank === 8 && m.scaling === 2));
    const qwen = adapter("qwen2-tiny");
    const q = verifyAdapter(await spec("qwen2-tiny"), qwen.config, qwen.file);
    assert.ok(q.ok);
    assert.equal(q.value.modules.length, 6);
    assert.ok(
      q.value.modules.every((m) => m.scaling === 4),
      "rsLoRA: 8/sqrt(4)",
    );
  });

  it("refuses the Qwen2 adapter on the Llama base, naming the tensor and both shapes", async () => {
    const qwen = adapter("qwen2-tiny");
    const v = verifyAdapter(await spec("llama-tiny"), qwen.config, qwen.file);
    assert.equal(v.ok, false);
    if (!v.ok) {
      assert.match(
        v.error.message,
        /^tensor `base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight`: shape \[4, 96\] does not match base \[4, 64\]$/,
      );
    }
  });

  it("refuses keys for layers the base lacks, missing factors and over-limit ranks", async () => {
    const s = await spec("llama-tiny");
    const config = parseLoraConfig({ peft_type: "LORA", r: 2, target_modules: ["q_proj"] });
    assert.ok(config.ok);
    const t = (shape: number[]): TensorInput => ({
      dtype: "F32",
      shape,
      data: new Float32Array(shape.reduce((a, d) => a * d, 1)),
    });
    const decode = (tensors: Record<string, TensorInput>) => {
      const f = decodeSafetensors(encodeSafetensors(tensors));
      assert.ok(f.ok);
      return f.value;
    };
    const full: Record<string, TensorInput> = {};
    for (const layer of [0, 1]) {
      full[`base_model.model.model.layers.${layer}.self_attn.q_proj.lora_A.weight`] = t([2, 64]);
      full[`base_model.model.model.layers.${layer}.self_attn.q_proj.lora_B.weight`] = t([64, 2]);
    }
    assert.ok(verifyAdapter(s, config.value, decode(full)).ok);

    const extra = decodeSafetensors(
      encodeSafetensors({
        ...full,
        "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight": t([2, 64]),
      }),
    );
    assert.ok(extra.ok);
    const e1 = verifyAdapter(s, config.value, extra.value);
    assert.match(e1.ok ? "" : e1.error.message, /layers\.7.*does not exist in the base \(llama, 2 layers\)/);

    const { "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight": _, ...partial } = full;
    const e2 = verifyAdapter(s, config.value, decode(partial));
    assert.match(
      e2.ok ? "" : e2.error.message,
      /layers\.1\.self_attn\.q_proj\.lora_B\.weight`: is targeted .* but missing/,
    );

    const e3 = verifyAdapter(s, config.value, decode(full), { maxRank: 1 });
    assert.match(e3.ok ? "" : e3.error.message, /rank 2 exceeds the limit of 1/);
  });

  it("accepts bf16 and f16 factors", async () => {
    const s = tinySpec("mistral");
    const config = parseLoraConfig({ peft_type: "LORA", r: 2, target_modules: ["k_proj"] });
    assert.ok(config.ok);
    const f = decodeSafetensors(
      encodeSafetensors({
        "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": {
          dtype: "BF16",
          shape: [2, 8],
          data: new Uint16Array(16),
        },
        "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight": {
          dtype: "F16",
          shape: [4, 2],
          data: new Uint16Array(8),
        },
      }),
    );
    assert.ok(f.ok);
    assert.ok(verifyAdapter(s, config.value, f.value).ok);
  });

  it("refuses a non-finite factor, naming the first such tensor, with or without a base", () => {
    const s = tinySpec("llama");
    const config = parseLoraConfig({ peft_type: "LORA", r: 2, target_modules: ["q_proj"] });
    assert.ok(config.ok);
    const b = new Float32Array(16);
    b[5] = Number.NEGATIVE_INFINITY;
    const f = decodeSafetensors(
      encodeSafetensors({
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
          dtype: "F32",
          shape: [2, 8],
          data: new Float32Array(16),
        },
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {
          dtype: "F32",
          shape: [8, 2],
          data: b,
        },
      }),
    );
    assert.ok(f.ok);
    const want =
      /^tensor `base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight`: contains -Inf \(element 5\)/;
    const withBase = verifyAdapter(s, config.value, f.value);
    assert.match(withBase.ok ? "" : withBase.error.message, want);
    const pairs = verifyAdapterPairs(config.value, f.value);
    assert.match(pairs.ok ? "" : pairs.error.message, want);
  });

  it("refuses a lora_B whose largest element times the scaling overflows float32, and only then", () => {
    const s = tinySpec("llama");
    // scaling = alpha / r = 5e9; 1e29 × 5e9 = 5e38 > 3.4e38, 1e28 × 5e9 fits.
    const config = parseLoraConfig({ peft_type: "LORA", r: 2, lora_alpha: 1e10, target_modules: ["q_proj"] });
    assert.ok(config.ok);
    const file = (largest: number) => {
      const b = Float32Array.from({ length: 16 }, (_, i) => (i % 3) - 1);
      b[11] = -largest;
      const f = decodeSafetensors(
        encodeSafetensors({
          "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {
            dtype: "F32",
            shape: [2, 8],
            data: new Float32Array(16).fill(1e30),
          },
          "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {
            dtype: "F32",
            shape: [8, 2],
            data: b,
          },
        }),
      );
      assert.ok(f.ok);
      return f.value;
    };
    const want = `lora_B scaled by lora_alpha / r = 10000000000 / 2 overflows float32 (largest |B| element ${Math.fround(1e29)} × scaling 5000000000)`;
    const withBase = verifyAdapter(s, config.value, file(1e29));
    assert.ok(!withBase.ok && withBase.error.message.includes(want), JSON.stringify(withBase));
    const pairs = verifyAdapterPairs(config.value, file(1e29));
    assert.ok(!pairs.ok && pairs.error.message.includes(want), JSON.stringify(pairs));
    // A large A is not scaled: only B is checked.
    assert.ok(verifyAdapter(s, config.value, file(1e28)).ok);
    assert.ok(verifyAdapterPairs(config.value, file(1e28)).ok);
  });
});
