/**
 * The decoder layers in the fused layout (`decoder-graph.ts`), built for a GPU's fixed cost per
 * node (../shared/docs/gpu.md): per layer, one projection per vLLM packed module (`qkv_proj`,
 * `o_proj`, `gate_up_proj`, `down_proj`) over row-concatenated weights, one LoRA pair per packed
 * module (A stacked, B block-diagonal: `runtime/lora-feeds.ts` packs them; two Gemms or one fused
 * node, `LoraOp`), and each residual add
 * with the RMSNorm after it as one `SkipSimplifiedLayerNormalization` (com.microsoft), whose
 * output 3 is the residual sum the next add needs. The last one applies the final norm.
 */
import type { LoraForm, LoraOp } from "../model-format/index.ts";
import { buildModelSpec, PACKED_MODULES, type PackedModule } from "../model-spec/index.ts";
import { attr, type GraphBuilder } from "../onnx/index.ts";
import type { Architecture } from "./architecture.ts";
import type { QkvInput } from "./attention.ts";
import { project, projectWithLora } from "./decoder-graph.ts";
import type { WeightPlan } from "./weights.ts";

/** What the layers read from the body being built (`buildDecoderBody`). */
export interface LayerContext {
  g: GraphBuilder;
  arch: Architecture;
  w: WeightPlan;
  /** Add a LoRA pair per packed module; its inputs are appended to `loraInputs`. */
  lora: boolean;
  /** How each pair's first product is computed (`lora-forms.ts`). */
  loraForm: LoraForm;
  /** How each LoRA branch is computed (`loraBranch`): ONNX ops, or one fused node. */
  loraOp: LoraOp;
  loraInputs: string[];
  /** One layer's attention over its packed q/k/v projection, before `o_proj` (`buildDecoderBody`). */
  attend: (layer: number, x: QkvInput) => string;
}

const packed = (name: string): PackedModule => {
  const found = PACKED_MODULES.find((p) => p.name === name);
  if (found === undefined) throw new Error(`no packed module ${name}`);
  return found;
};

/**
 * The layers over the embedded tokens `h` (float32 `[tokens, hidden]`), returning the last
 * layer's output after the final norm (`model.norm`).
 */
export function fusedLayers(c: LayerContext, embedded: string): string {
  const { g, arch, w } = c;
  const { dims } = arch;
  const { hiddenSize: D, intermediateSize: I } = dims;
  const spec = buildModelSpec(dims);
  const eps = attr.float(arch.rmsNormEps);

  /** One packed module's projection of `x`, plus its LoRA pair. */
  const projection = (x: string, layer: number, name: string, bias: boolean): string => {
    const group = packed(name);
    const prefix = `model.layers.${layer}`;
    const members = group.modules.map((m) => {
      const t = spec.modules.get(`${prefix}.${m}`);
      if (t === undefined) throw new Error(`no module ${prefix}.${m}`);
      return t;
    });
    const inF = members[0]?.inFeatures ?? 0;
    const outF = members.reduce((a, t) => a + t.outFeatures, 0);
    const module = `${prefix}.${group.name}`;
    return g.scoped(group.name.split(".").at(-1) ?? group.name, () => {
      const rows = (suffix: string) =>
        members.map((t) => ({ source: `${t.name}.${suffix}`, rows: t.outFeatures }));
      const m = w.fusedMatrix(`${module}.weight`, rows("weight"), inF);
      const b = bias ? w.fusedVector(`${module}.bias`, rows("bias")) : null;
      if (!c.lora) return project(g, x, m, inF, outF, b);
      return projectWithLora(g, x, m, b, { module, inF, outF, form: c.loraForm, op: c.loraOp }, c.loraInputs);
    });
  };

  /** `RMSNorm(x + skip) · weight`, and the sum `x + skip` when `withSum`. */
  const skipNorm = (x: string, skip: string, weight: string, withSum: boolean): [string, string] => {
    const [normed = "", , , sum = ""] = g.op(
      "SkipSimplifiedLayerNormalization",
      [x, skip, w.vector(weight, [D])],
      { epsilon: eps },
      { domain: "com.microsoft", outputs: withSum ? 4 : 1, omit: [1, 2] },
    );
    return [normed, sum];
  };

  let h = embedded;
  let a = g.op1("SimplifiedLayerNormalization", [h, w.vector("model.layers.0.input_layernorm.weight", [D])], {
    axis: attr.int(-1),
    epsilon: eps,
  });
  for (let layer = 0; layer < dims.numLayers; layer++) {
    const last = layer === dims.numLayers - 1;
    [a, h] = g.scoped(`layers.${layer}`, () => {
      const attnOut = g.scoped("attn", () => {
        const qkv = projection(a, layer, "self_attn.qkv_proj", arch.qkvBias);
        const o = c.attend(layer, { qkv });
        return projection(o, layer, "self_attn.o_proj", arch.oBias);
      });
      const [m, h1] = skipNorm(attnOut, h, `model.layers.${layer}.post_attention_layernorm.weight`, true);
      const mlpOut = g.scoped("mlp", () => {
        const gateUp = projection(m, layer, "mlp.gate_up_proj", arch.mlpBias);
        const [gate = "", up = ""] = g.op(
          "Split",
          [gateUp, g.constant("int64", [2], [I, I])],
          { axis: attr.int(1) },
          { outputs: 2 },
        );
        // SiLU(gate) · up; ORT's optimizer turns x · Sigmoid(x) into one QuickGelu node where it can.
        const act = g.op1("Mul", [g.op1("Mul", [gate, g.op1("Sigmoid", [gate])]), up]);
        return projection(act, layer, "mlp.down_proj", arch.mlpBias);
      });
      const next = last ? "model.norm.weight" : `model.layers.${layer + 1}.input_layernorm.weight`;
      return skipNorm(mlpOut, h1, next, !last);
    });
  }
  return a;
}
