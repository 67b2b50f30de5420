/** PEFT LoRA adapter configuration: parsing, module targeting and per-module scaling. */
export { type LoraConfig, PeftConfigError, parseLoraConfig } from "./config.ts";
export { isTargeted, moduleLora } from "./targeting.ts";
