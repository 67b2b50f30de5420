import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isTargeted, type LoraConfig, moduleLora, parseLoraConfig } from "./index.ts";

function config(json: Record<string, unknown>): LoraConfig {
  const r = parseLoraConfig({ peft_type: "LORA", ...json });
  if (!r.ok) throw r.error;
  return r.value;
}

describe("adapter_config.json", () => {
  it("applies PEFT defaults", () => {
    const c = config({});
    assert.equal(c.r, 8);
    assert.equal(c.alpha, 8);
    assert.deepEqual(c.targetModules, { kind: "names", names: ["q_proj", "v_proj"] });
  });

  it("computes scaling as alpha/r, or alpha/sqrt(r) with rsLoRA", () => {
    assert.equal(moduleLora(config({ r: 8, lora_alpha: 16 }), "model.layers.0.self_attn.q_proj").scaling, 2);
    assert.equal(
      moduleLora(config({ r: 4, lora_alpha: 8, use_rslora: true }), "model.layers.0.self_attn.q_proj")
        .scaling,
      4,
    );
  });

  it("resolves rank_pattern and alpha_pattern by suffix or regex, first match wins", () => {
    const c = config({
      r: 8,
      lora_alpha: 16,
      rank_pattern: { "layers\\.1\\.self_attn\\.q_proj": 4, q_proj: 2 },
      alpha_pattern: { down_proj: 32 },
    });
    assert.deepEqual(moduleLora(c, "model.layers.1.self_attn.q_proj"), {
      rank: 4,
      alpha: 16,
      alphaField: "lora_alpha",
      scaling: 4,
    });
    assert.deepEqual(moduleLora(c, "model.layers.0.self_attn.q_proj"), {
      rank: 2,
      alpha: 16,
      alphaField: "lora_alpha",
      scaling: 8,
    });
    assert.deepEqual(moduleLora(c, "model.layers.0.mlp.down_proj"), {
      rank: 8,
      alpha: 32,
      alphaField: "alpha_pattern",
      scaling: 4,
    });
    // The pattern must match whole path segments: "proj" alone does not match "q_proj".
    assert.equal(
      moduleLora(config({ rank_pattern: { proj: 3 } }), "model.layers.0.self_attn.q_proj").rank,
      8,
    );
  });

  it("matches list targets by suffix and string targets by full regex", () => {
    const list = config({ target_modules: ["q_proj", "mlp.up_proj"] });
    assert.ok(isTargeted(list, "model.layers.0.self_attn.q_proj"));
    assert.ok(isTargeted(list, "model.layers.0.mlp.up_proj"));
    assert.ok(!isTargeted(list, "model.layers.0.self_attn.k_proj"));
    const regex = config({ target_modules: ".*\\.1\\.self_attn\\.(q|v)_proj" });
    assert.ok(isTargeted(regex, "model.layers.1.self_attn.v_proj"));
    assert.ok(!isTargeted(regex, "model.layers.0.self_attn.v_proj"));
    const all = config({ target_modules: "all-linear", exclude_modules: ["down_proj"] });
    assert.ok(isTargeted(all, "model.layers.3.mlp.gate_proj"));
    assert.ok(!isTargeted(all, "model.layers.3.mlp.down_proj"));
  });

  it("honours layers_to_transform and layers_pattern", () => {
    const c = config({ target_modules: ["q_proj"], layers_to_transform: [1], layers_pattern: "layers" });
    assert.ok(isTargeted(c, "model.layers.1.self_attn.q_proj"));
    assert.ok(!isTargeted(c, "model.layers.0.self_attn.q_proj"));
  });

  it("refuses what the engine does not implement, naming the field", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ use_dora: true }, "use_dora"],
      [{ modules_to_save: ["lm_head"] }, "modules_to_save"],
      [{ lora_bias: true }, "lora_bias"],
      [{ bias: "all" }, "bias"],
      [{ alora_invocation_tokens: [5, 6] }, "alora_invocation_tokens"],
      [{ kasa_config: {} }, "kasa_config"],
    ];
    for (const [json, field] of cases) {
      const r = parseLoraConfig({ peft_type: "LORA", ...json });
      assert.equal(r.ok, false, field);
      if (!r.ok) {
        assert.equal(r.error.field, field);
        assert.match(r.error.message, new RegExp(`adapter_config.json: ${field}:`));
      }
    }
  });

  it("refuses malformed configs with the field at fault", () => {
    const bad = [
      ["{", "(file)"],
      [{ peft_type: "IA3" }, "peft_type"],
      [{ peft_type: "LORA", r: 0 }, "r"],
      [{ peft_type: "LORA", rank_pattern: { q_proj: -1 } }, "rank_pattern.q_proj"],
    ] as const;
    for (const [input, field] of bad) {
      const r = parseLoraConfig(input);
      assert.equal(r.ok ? "ok" : r.error.field, field);
    }
  });
});

describe("adapter_config.json patterns (Python regexes)", () => {
  it("selects modules with Python-only syntax as PEFT does", () => {
    const c = config({ target_modules: "(?P<proj>.*\\.(q_proj|v_proj))" });
    assert.ok(isTargeted(c, "model.layers.0.self_attn.q_proj"));
    assert.ok(isTargeted(c, "model.layers.1.self_attn.v_proj"));
    assert.ok(!isTargeted(c, "model.layers.1.self_attn.k_proj"));
    const ranks = config({ r: 8, rank_pattern: { "layers\\.(?P<i>1)\\.self_attn\\.q_proj": 2 } });
    assert.equal(moduleLora(ranks, "model.layers.1.self_attn.q_proj").rank, 2);
    assert.equal(moduleLora(ranks, "model.layers.0.self_attn.q_proj").rank, 8);
  });

  it("refuses a pattern RE2 cannot run as a typed error naming the field", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ target_modules: "(?P<p>.*_proj)(?P=p)" }, "target_modules"],
      [{ exclude_modules: ".*(?!q_proj)" }, "exclude_modules"],
      [{ rank_pattern: { "(q)\\1": 4 } }, "rank_pattern.(q)\\1"],
      [{ alpha_pattern: { "(?<=self_attn\\.)q_proj": 4 } }, "alpha_pattern.(?<=self_attn\\.)q_proj"],
      [{ target_modules: ["q_proj"], layers_to_transform: [0], layers_pattern: "lay(ers" }, "layers_pattern"],
    ];
    for (const [json, field] of cases) {
      const r = parseLoraConfig({ peft_type: "LORA", ...json });
      assert.equal(r.ok ? "ok" : r.error.field, field);
      if (!r.ok) assert.match(r.error.message, /not a supported regular expression: /);
    }
  });

  it("applies layers_to_transform to all-linear, which PEFT expands to a list", () => {
    const c = config({ target_modules: "all-linear", layers_to_transform: 1 });
    assert.ok(isTargeted(c, "model.layers.1.mlp.up_proj"));
    assert.ok(!isTargeted(c, "model.layers.0.mlp.up_proj"));
  });
});

describe("init_lora_weights", () => {
  it("accepts initialisations that only choose the starting factors", () => {
    for (const init of [true, false, "gaussian", "eva", "orthogonal", "mica"]) {
      assert.equal(parseLoraConfig({ peft_type: "LORA", init_lora_weights: init }).ok, true, String(init));
    }
  });

  it("refuses initialisations that rewrite the base, saying to convert to plain LoRA", () => {
    for (const init of ["pissa", "pissa_niter_16", "olora", "corda", "loftq", "lora_ga", "PiSSA"]) {
      const r = parseLoraConfig({ peft_type: "LORA", init_lora_weights: init });
      assert.equal(r.ok ? "ok" : r.error.field, "init_lora_weights", init);
      if (!r.ok) {
        assert.match(r.error.message, /rewrites/);
        assert.match(r.error.message, /path_initial_model_for_weight_conversion/);
      }
    }
    const unknown = parseLoraConfig({ peft_type: "LORA", init_lora_weights: "magic" });
    assert.equal(
      unknown.ok ? "ok" : unknown.error.message,
      'adapter_config.json: init_lora_weights: unknown PEFT initialisation "magic"',
    );
  });
});
