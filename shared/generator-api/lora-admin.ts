/**
 * Wire contracts of vLLM's adapter admin API (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`),
 * one definition for the generator's route and its clients. Both answer vLLM's plain-text success
 * strings, and errors in the generator's envelope (`generatorErrorBodySchema`). `null` means
 * absent, as in vLLM's pydantic models; unknown keys are tolerated.
 */
import { z } from "zod";

/** Served names: 1-128 of A-Z a-z 0-9 . _ : / -, starting alphanumeric (`@` only as `<run>@<version>`). */
const ALIAS_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;

const loraName = z
  .string()
  .regex(ALIAS_NAME, "1-128 of A-Z a-z 0-9 . _ : / - @, starting with a letter or digit");

/** `POST /v1/load_lora_adapter`. `lora_path` absent: `lora_name` is also the path (`<run>@<version>`). */
export const loadLoraRequestSchema = z.object({
  lora_name: loraName,
  lora_path: z.string().min(1).max(4096).nullish(),
  /**
   * vLLM's permission to replace a loaded name in place. Absent (or null) means true here, as RL loops
   * that reload a policy under one name expect; `false` refuses to replace a name that serves another
   * adapter (400, vLLM's text).
   */
  load_inplace: z.boolean().nullish(),
});

/** `POST /v1/unload_lora_adapter`. vLLM's `lora_int_id` has no meaning here and is refused. */
export const unloadLoraRequestSchema = z.object({
  lora_name: loraName,
  lora_int_id: z
    .unknown()
    .refine((v) => v == null, "not supported here: adapters are unloaded by lora_name")
    .optional(),
});
