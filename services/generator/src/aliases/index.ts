/** Served names (vLLM LoRA modules) loaded through the admin API: registry, sources, access policy. */
export { type AdminDecision, decideAdmin, isLoopbackHost } from "./admin-policy.ts";
export { isInside, type LocalAdapterDeps, loadLocalAdapter } from "./local-adapter.ts";
export { type LoraSource, parseLoraPath, type StoreLocation } from "./lora-path.ts";
export {
  type AliasEntry,
  AliasRegistry,
  type AliasTarget,
  aliasSource,
  type LocalAdapter,
  type SetRefusal,
  sameTarget,
} from "./registry.ts";
