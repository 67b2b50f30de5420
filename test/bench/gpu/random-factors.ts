/**
 * Seeded LoRA factors for the GPU probes: rank `rank` on every module of the model, packed as the
 * fused decoder graph takes them (vLLM's packed modules, `packLoraFeeds`), as host tensors. The
 * values do not change a step's time; B is scaled small so that logits stay finite.
 */
import { loraALayout, type ModelManifest } from "@loracast/shared/model-format";
import { type ModelSpec, peftKey } from "@loracast/shared/model-spec";
import type { HostTensor } from "@loracast/shared/ort-native";
import { createRng } from "@loracast/shared/random";
import { packLoraFeeds } from "@loracast/shared/runtime";
import * as ort from "onnxruntime-node";

/**
 * float32 factors by input name (`[Σr, in]` A, or `[in, Σr]` for a `columns` form of the manifest's
 * `decoder.loraForm`; block-diagonal `[Σout, Σr]` B), seed 18.
 */
export function randomPackedFactors(
  spec: ModelSpec,
  manifest: ModelManifest,
  rank: number,
): Record<string, HostTensor> {
  const rng = createRng(18);
  const random = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  const perModule: Record<string, ort.Tensor> = {};
  for (const m of spec.modules.values()) {
    perModule[peftKey(m.name, "A")] = new ort.Tensor("float32", random(rank * m.inFeatures, 0.02), [
      rank,
      m.inFeatures,
    ]);
    perModule[peftKey(m.name, "B")] = new ort.Tensor("float32", random(m.outFeatures * rank, 0.002), [
      m.outFeatures,
      rank,
    ]);
  }
  return Object.fromEntries(
    Object.entries(
      packLoraFeeds(
        spec,
        manifest.decoder.packedModules,
        perModule,
        loraALayout(manifest.decoder.loraForm ?? "gemm"),
      ),
    ).map(([k, t]) => [k, { type: "float32", dims: [...t.dims], data: t.data as Float32Array }]),
  );
}
