import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type * as ort from "onnxruntime-node";
import { buildModelSpec, PACKED_MODULES, peftKey, verifyAdapterFiles } from "../model-spec/index.ts";
import { createRng } from "../random/index.ts";
import { encodeSafetensors, type TensorInput } from "../safetensors/index.ts";
import { adapterFeeds, baseFeeds, isBaseFeeds, packLoraFeeds } from "./index.ts";

// Two layers, GQA (k/v narrower than q), intermediate ≠ hidden: every group has distinct widths.
const spec = buildModelSpec({
  modelType: "llama",
  hiddenSize: 8,
  intermediateSize: 12,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 2,
  vocabSize: 16,
  tieWordEmbeddings: false,
});

/**
 * A PEFT adapter over `ranks` (module suffix → rank; absent: untargeted), lora_alpha 8, so the
 * default scaling is 8 / r (PEFT `lora_alpha / r`, rank_pattern per module).
 */
function adapter(ranks: Record<string, number>, seed: number) {
  const rng = createRng(seed);
  const tensors: Record<string, TensorInput> = {};
  for (const m of spec.modules.values()) {
    const suffix = Object.keys(ranks).find((s) => m.name.endsWith(`.${s}`));
    if (suffix === undefined) continue;
    const r = ranks[suffix] ?? 0;
    for (const [which, shape] of [
      ["A", [r, m.inFeatures]],
      ["B", [m.outFeatures, r]],
    ] as const) {
      const data = Float32Array.from({ length: shape[0] * shape[1] }, () => rng.next() - 0.5);
      tensors[peftKey(m.name, which)] = { dtype: "F32", shape, data };
    }
  }
  const pattern = Object.fromEntries(Object.entries(ranks).map(([s, r]) => [s, r]));
  const config = {
    peft_type: "LORA",
    r: 2,
    lora_alpha: 8,
    rank_pattern: pattern,
    target_modules: Object.keys(ranks),
  };
  const checked = verifyAdapterFiles(
    spec,
    JSON.stringify(config),
    encodeSafetensors(tensors, { format: "pt" }),
  );
  if (!checked.ok) throw new Error(checked.error);
  return checked.value.verified;
}

const data = (t: ort.Tensor | undefined) => (t?.data ?? new Float32Array(0)) as Float32Array;

/** y = (x · Aᵀ) · Bᵀ for one row x, A [r, in], B [out, r]. */
function lora(x: Float32Array, a: ort.Tensor, b: ort.Tensor): Float32Array {
  const [r = 0, inF = 0] = a.dims;
  const outF = b.dims[0] ?? 0;
  const u = Float32Array.from({ length: r }, (_, j) =>
    x.reduce((s, v, i) => s + v * (data(a)[j * inF + i] ?? 0), 0),
  );
  return Float32Array.from({ length: outF }, (_, o) =>
    u.reduce((s, v, j) => s + v * (data(b)[o * r + j] ?? 0), 0),
  );
}

describe("packLoraFeeds", () => {
  // Ranks differ per module (PEFT rank_pattern); k_proj and up_proj are not targeted.
  const verified = adapter({ q_proj: 2, v_proj: 3, o_proj: 1, gate_proj: 2, down_proj: 4 }, 7);
  const perModule = adapterFeeds(spec, verified);
  const packed = packLoraFeeds(spec, PACKED_MODULES, perModule);

  it("has one A/B pair per layer and packed module, named by the packed module's PEFT key", () => {
    const expected = [0, 1].flatMap((l) =>
      PACKED_MODULES.flatMap((g) =>
        ["A", "B"].map((w) => peftKey(`model.layers.${l}.${g.name}`, w as "A" | "B")),
      ),
    );
    assert.deepEqual(Object.keys(packed).sort(), expected.sort());
  });

  it("stacks A over the members' ranks and lays B out block-diagonally, zero off the blocks", () => {
    const key = (m: string) => `model.layers.1.${m}`;
    const a = packed[peftKey(key("self_attn.qkv_proj"), "A")];
    const b = packed[peftKey(key("self_attn.qkv_proj"), "B")];
    // q: r 2, 8 rows; k: untargeted (rank 0), 4 rows; v: r 3, 4 rows.
    assert.deepEqual(a?.dims, [5, 8]);
    assert.deepEqual(b?.dims, [16, 5]);
    const members = [
      { m: "self_attn.q_proj", row: 0, col: 0 },
      { m: "self_attn.k_proj", row: 8, col: 2 },
      { m: "self_attn.v_proj", row: 12, col: 2 },
    ];
    const owner = (row: number) => [...members].reverse().find((x) => row >= x.row) ?? members[0];
    for (const { m, col } of members) {
      const ma = perModule[peftKey(key(m), "A")];
      const r = ma?.dims[0] ?? 0;
      assert.deepEqual(data(a).subarray(col * 8, (col + r) * 8), data(ma), `${m} A rows`);
    }
    for (let row = 0; row < 16; row++) {
      const own = owner(row);
      assert.ok(own !== undefined);
      const mb = perModule[peftKey(key(own.m), "B")];
      const r = mb?.dims[1] ?? 0;
      for (let col = 0; col < 5; col++) {
        const inside: boolean = col >= own.col && col < own.col + r;
        const want: number = inside ? (data(mb)[(row - own.row) * r + col - own.col] ?? Number.NaN) : 0;
        assert.equal(data(b)[row * 5 + col], want, `B[${row}, ${col}]`);
      }
    }
  });

  it("computes each member's LoRA, PEFT-scaled, in its own output rows", () => {
    const x = Float32Array.from({ length: 8 }, (_, i) => Math.sin(i + 1));
    const got = lora(
      x,
      packed[peftKey("model.layers.0.mlp.gate_up_proj", "A")] as ort.Tensor,
      packed[peftKey("model.layers.0.mlp.gate_up_proj", "B")] as ort.Tensor,
    );
    assert.equal(got.length, 24);
    // gate: its own factors with B · lora_alpha / r = 8 / 2; up: untargeted, zero.
    const gate = verified.modules.find((m) => m.module === "model.layers.0.mlp.gate_proj");
    assert.ok(gate !== undefined);
    assert.equal(gate.scaling, 4);
    const a = gate.a.array() as Float32Array;
    const b = gate.b.array() as Float32Array;
    for (let o = 0; o < 12; o++) {
      let want = 0;
      for (let j = 0; j < 2; j++) {
        let u = 0;
        for (let i = 0; i < 8; i++) u += (x[i] ?? 0) * (a[j * 8 + i] ?? 0);
        want += u * 4 * (b[o * 2 + j] ?? 0);
      }
      assert.ok(Math.abs((got[o] ?? 0) - want) < 1e-5, `gate row ${o}: ${got[o]} vs ${want}`);
    }
    assert.deepEqual([...got.subarray(12)], new Array(12).fill(0));
  });

  it("keeps a one-module group's own tensors (o_proj, down_proj), without a copy", () => {
    for (const m of ["self_attn.o_proj", "mlp.down_proj"]) {
      for (const w of ["A", "B"] as const) {
        const k = peftKey(`model.layers.1.${m}`, w);
        assert.equal(packed[k], perModule[k], k);
      }
    }
  });

  it("gives the base (no adapter) rank-0 pairs of the packed widths", () => {
    const base = packLoraFeeds(spec, PACKED_MODULES, baseFeeds(spec));
    assert.deepEqual(base[peftKey("model.layers.0.self_attn.qkv_proj", "A")]?.dims, [0, 8]);
    assert.deepEqual(base[peftKey("model.layers.0.self_attn.qkv_proj", "B")]?.dims, [16, 0]);
    assert.deepEqual(base[peftKey("model.layers.0.mlp.gate_up_proj", "B")]?.dims, [24, 0]);
    assert.deepEqual(base[peftKey("model.layers.0.mlp.down_proj", "A")]?.dims, [0, 12]);
  });

  it("packs a feeds object once, and passes packed feeds through", () => {
    assert.equal(packLoraFeeds(spec, PACKED_MODULES, perModule), packed);
    assert.equal(packLoraFeeds(spec, PACKED_MODULES, packed), packed);
    assert.ok(Object.isFrozen(packed));
  });

  it("with A in columns (the matmul and splitk forms), stores each packed A transposed, B as in rows", () => {
    const columns = packLoraFeeds(spec, PACKED_MODULES, perModule, "columns");
    for (const key of Object.keys(packed)) {
      const [rows, cols] = packed[key]?.dims ?? [];
      const got = columns[key];
      if (!key.endsWith("lora_A.weight")) {
        assert.deepEqual(got?.dims, packed[key]?.dims, key);
        assert.deepEqual(data(got), data(packed[key]), `${key}: B as in rows`);
        continue;
      }
      assert.deepEqual(got?.dims, [cols, rows], key);
      for (let i = 0; i < (rows ?? 0); i++)
        for (let j = 0; j < (cols ?? 0); j++)
          assert.equal(
            data(got)[j * (rows ?? 0) + i],
            data(packed[key])[i * (cols ?? 0) + j],
            `${key}[${i}, ${j}]`,
          );
    }
    // Cached per layout; packed feeds of one layout are refused as the other's.
    assert.equal(packLoraFeeds(spec, PACKED_MODULES, perModule, "columns"), columns);
    assert.equal(packLoraFeeds(spec, PACKED_MODULES, columns, "columns"), columns);
    assert.equal(packLoraFeeds(spec, PACKED_MODULES, perModule), packed);
    assert.throws(() => packLoraFeeds(spec, PACKED_MODULES, columns), /packed with A columns, not rows/);
    const base = packLoraFeeds(spec, PACKED_MODULES, baseFeeds(spec), "columns");
    assert.deepEqual(base[peftKey("model.layers.0.self_attn.qkv_proj", "A")]?.dims, [8, 0]);
    assert.deepEqual(base[peftKey("model.layers.0.mlp.down_proj", "A")]?.dims, [12, 0]);
    assert.ok(isBaseFeeds(base));
  });

  it("refuses feeds that lack a module, naming it", () => {
    const { [peftKey("model.layers.1.self_attn.v_proj", "B")]: _, ...partial } = perModule;
    assert.throws(
      () => packLoraFeeds(spec, PACKED_MODULES, partial),
      /lack module model\.layers\.1\.self_attn\.v_proj/,
    );
  });
});
