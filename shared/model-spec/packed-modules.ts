/**
 * vLLM's packed modules (`packed_modules_mapping` of its Llama and Qwen2 models): projections that
 * read the same input computed as one, their weights' rows concatenated in the order listed. The
 * fused decoder graph has one base projection and one LoRA pair per packed module and layer
 * (docs/architecture.md, "Model artifacts and the decoder graph").
 */

/** One packed module: its name under a layer, and the HF modules it stands for, in row order. */
export interface PackedModule {
  /** e.g. `self_attn.qkv_proj` (the LoRA inputs are named by it: `peftKey("model.layers.0.self_attn.qkv_proj", "A")`). */
  name: string;
  /** HF module paths under the layer, e.g. `self_attn.q_proj`, in the order of the fused weight's rows. */
  modules: readonly string[];
}

/** The four packed modules of a Llama-family layer: `qkv_proj`, `o_proj`, `gate_up_proj`, `down_proj`. */
export const PACKED_MODULES: readonly PackedModule[] = [
  { name: "self_attn.qkv_proj", modules: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"] },
  { name: "self_attn.o_proj", modules: ["self_attn.o_proj"] },
  { name: "mlp.gate_up_proj", modules: ["mlp.gate_proj", "mlp.up_proj"] },
  { name: "mlp.down_proj", modules: ["mlp.down_proj"] },
];
