import { PROJECTIONS } from "../architectures/index.ts";
import type { LoraConfig, ModuleSelector, PatternEntry } from "./config.ts";

/**
 * PEFT's module selection and per-module rank/alpha, over HF module paths such as
 * `model.layers.3.self_attn.q_proj` (peft/tuners/tuners_utils.py `check_target_module_exists`,
 * peft/utils/other.py `get_pattern_key`). The Python regexes were compiled for RE2 when the config
 * was parsed (python-regex.ts), so nothing here can throw on a user's pattern.
 */

/** PEFT's `all-linear`: the last path segment of every Linear a LoRA may target, minus lm_head. */
const ALL_LINEAR = new Set(PROJECTIONS.map((p) => p.name));

function selects(selector: ModuleSelector, name: string): boolean {
  if (selector.kind === "regex") return selector.regex.matches(name);
  return selector.names.some((entry) => name === entry || name.endsWith(`.${entry}`));
}

function layerIndex(name: string, layersPattern: LoraConfig["layersPattern"]): number | null {
  if (layersPattern === null) {
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(name);
    return m?.[1] === undefined ? null : Number(m[1]);
  }
  for (const re of layersPattern) {
    // re.match: anchored at the start only. The index is the last group, after any in the pattern.
    const m = re.matcher(name);
    if (m.lookingAt()) return Number(m.group(m.groupCount()));
  }
  return null;
}

/** Whether PEFT would wrap the module `name` with a LoRA layer under this config. */
export function isTargeted(config: LoraConfig, name: string): boolean {
  if (config.excludeModules !== null && selects(config.excludeModules, name)) return false;
  const target = config.targetModules;
  const hit =
    target === "all-linear" ? ALL_LINEAR.has(name.slice(name.lastIndexOf(".") + 1)) : selects(target, name);
  if (!hit) return false;
  // PEFT applies layers_to_transform only to list-typed target_modules ("all-linear" becomes one).
  if (config.layersToTransform !== null && (target === "all-linear" || target.kind === "names")) {
    const idx = layerIndex(name, config.layersPattern);
    return idx !== null && config.layersToTransform.includes(idx);
  }
  return true;
}

function patternValue(pattern: readonly PatternEntry[], name: string): number | undefined {
  return pattern.find((p) => p.regex.matches(name))?.value;
}

/**
 * Rank and LoRA scaling factor of one module, after rank_pattern, alpha_pattern and rsLoRA.
 * `alphaField` names the adapter_config.json field the alpha came from, for error messages.
 */
export function moduleLora(
  config: LoraConfig,
  name: string,
): { rank: number; alpha: number; alphaField: "lora_alpha" | "alpha_pattern"; scaling: number } {
  const rank = patternValue(config.rankPattern, name) ?? config.r;
  const patterned = patternValue(config.alphaPattern, name);
  const alpha = patterned ?? config.alpha;
  const scaling = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
  return { rank, alpha, alphaField: patterned === undefined ? "lora_alpha" : "alpha_pattern", scaling };
}
