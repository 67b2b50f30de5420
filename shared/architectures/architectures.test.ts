import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseArchitecture } from "../model-builder/architecture.ts";
import { buildModelSpec, parseDecoderDims } from "../model-spec/index.ts";
import { isTargeted, parseLoraConfig } from "../peft/index.ts";
import { MODEL_TYPES, PROJECTIONS } from "./index.ts";

/** A small config.json of `model_type`, with extra fields. */
const config = (model_type: string, extra: Record<string, unknown> = {}) => ({
  model_type,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 16,
  ...extra,
});

describe("the architectures table", () => {
  it("is what the config parser accepts, naming every type when it refuses one", () => {
    for (const t of MODEL_TYPES) assert.ok(parseDecoderDims(config(t)).ok, t);
    const refused = parseDecoderDims(config("gemma"));
    assert.ok(!refused.ok);
    assert.match(refused.error.message, /supported: llama, qwen2, mistral$/);
  });

  it("gives every layer its seven projections with the widths of the dims (GQA: k/v narrower)", () => {
    const dims = parseDecoderDims(config("llama"));
    assert.ok(dims.ok);
    const spec = buildModelSpec(dims.value);
    assert.equal(spec.modules.size, 2 * PROJECTIONS.length);
    const shape = (m: string) => {
      const t = spec.modules.get(`model.layers.1.${m}`);
      return [t?.inFeatures, t?.outFeatures];
    };
    assert.deepEqual(shape("self_attn.q_proj"), [8, 8]);
    assert.deepEqual(shape("self_attn.k_proj"), [8, 4]);
    assert.deepEqual(shape("self_attn.o_proj"), [8, 8]);
    assert.deepEqual(shape("mlp.down_proj"), [12, 8]);
  });

  it("is PEFT's all-linear: every projection, not lm_head", () => {
    const all = parseLoraConfig({ peft_type: "LORA", r: 2, target_modules: "all-linear" });
    assert.ok(all.ok);
    for (const p of PROJECTIONS) assert.ok(isTargeted(all.value, `model.layers.0.${p.module}`), p.name);
    assert.ok(!isTargeted(all.value, "lm_head"));
  });

  it("applies each family's traits: Qwen2's q/k/v bias, Llama's bias flags, the sliding-window rules", () => {
    const arch = (t: string, extra: Record<string, unknown> = {}) => {
      const a = parseArchitecture(config(t, extra));
      assert.ok(a.ok, t);
      return a.value;
    };
    assert.deepEqual([arch("qwen2").qkvBias, arch("qwen2").oBias], [true, false]);
    assert.deepEqual(
      [arch("mistral", { attention_bias: true }).qkvBias, arch("llama").qkvBias],
      [false, false],
    );
    const biased = arch("llama", { attention_bias: true, mlp_bias: true });
    assert.deepEqual([biased.qkvBias, biased.oBias, biased.mlpBias], [true, true, true]);
    assert.deepEqual(arch("mistral", { sliding_window: 4 }).slidingWindow, [4, 4]);
    assert.deepEqual(arch("llama", { sliding_window: 4 }).slidingWindow, [null, null]);
    assert.deepEqual(arch("qwen2", { sliding_window: 4 }).slidingWindow, [null, null]);
    assert.deepEqual(
      arch("qwen2", { sliding_window: 4, use_sliding_window: true, max_window_layers: 1 }).slidingWindow,
      [null, 4],
    );
  });
});
