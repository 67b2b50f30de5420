import type { LoraConfig } from "./config.ts";

/**
 * PEFT's module selection and per-module rank/alpha, over HF module paths such as
 * `model.layers.3.self_attn.q_proj`. Python regexes in configs are evaluated as JS regexes; the
 * patterns PEFT users write (names, alternations, `.*`) mean the same in both.
 */

/** The last path segment of every Linear a LoRA may target in the Llama family, minus lm_head. */
const ALL_LINEAR = new Set(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);

function matchesSpec(spec: readonly string[] | string, name: string): boolean {
  if (typeof spec === "string") return fullMatch(spec, name);
  return spec.some((entry) => name === entry || name.endsWith(`.${entry}`));
}

function fullMatch(pattern: string, name: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(name);
}

function layerIndex(name: string, layersPattern: readonly string[] | null): number | null {
  const patterns = layersPattern === null ? [null] : layersPattern;
  for (const p of patterns) {
    const re = p === null ? /^.*?\.[^.]*\.(\d+)\./ : new RegExp(`^.*?\\.(?:${p})\\.(\\d+)\\.`);
    const m = re.exec(name);
    if (m?.[1] !== undefined) return Number(m[1]);
  }
  return null;
}

/** Whether PEFT would wrap the module `name` with a LoRA layer under this config. */
export function isTargeted(config: LoraConfig, name: string): boolean {
  if (config.excludeModules !== null && matchesSpec(config.excludeModules, name)) return false;
  const target = config.targetModules;
  const hit =
    target === "all-linear"
      ? ALL_LINEAR.has(name.slice(name.lastIndexOf(".") + 1))
      : matchesSpec(target, name);
  if (!hit) return false;
  // PEFT applies layers_to_transform only to list-typed target_modules.
  if (config.layersToTransform !== null && typeof target !== "string") {
    const idx = layerIndex(name, config.layersPattern);
    return idx !== null && config.layersToTransform.includes(idx);
  }
  return true;
}

function patternValue(pattern: Readonly<Record<string, number>>, name: string): number | undefined {
  for (const [key, value] of Object.entries(pattern)) {
    if (new RegExp(`^(.*\\.)?(?:${key})$`).test(name)) return value;
  }
  return undefined;
}

/** Rank and LoRA scaling factor of one module, after rank_pattern, alpha_pattern and rsLoRA. */
export function moduleLora(
  config: LoraConfig,
  name: string,
): { rank: number; alpha: number; scaling: number } {
  const rank = patternValue(config.rankPattern, name) ?? config.r;
  const alpha = patternValue(config.alphaPattern, name) ?? config.alpha;
  const scaling = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
  return { rank, alpha, scaling };
}
