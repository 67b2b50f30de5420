/** Served names (vLLM LoRA modules) loaded through the admin API: registry, sources, access policy. */
export { decideAdmin } from "./admin-policy.ts";
export { type LocalAdapterDeps, loadLocalAdapter } from "./local-adapter.ts";
export { type LoraSource, parseLoraPath, type StoreLocation } from "./lora-path.ts";
export {
  type AliasEntry,
  AliasRegistry,
  type AliasTarget,
  aliasSource,
  type SetRefusal,
  sameTarget,
} from "./registry.ts";
