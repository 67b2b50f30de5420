/** PEFT LoRA adapter configuration: parsing, module targeting and per-module scaling. */
export { type LoraConfig, parseLoraConfig } from "./config.ts";
export { isTargeted, moduleLora } from "./targeting.ts";
