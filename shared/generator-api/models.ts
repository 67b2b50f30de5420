/**
 * The generator's `GET /v1/models` and `GET /v1/models/:id`: OpenAI's model objects with vLLM's
 * ModelCard fields (`root`, `parent`, `max_model_len`) and loracast's `state` and `sha256`.
 */

import { z } from "zod";
import { sha256Hex, versionStateSchema } from "../manifest/index.ts";

/**
 * One servable model: the base, a run (its serving version), an alias loaded through the admin API,
 * or a loaded `<run>@<version>`. The base card has `parent: null` and `max_model_len`; adapter cards
 * have `parent` = the base's id, `state` and `sha256`.
 */
export const modelCardSchema = z.object({
  id: z.string().describe("What requests name as `model`"),
  object: z.literal("model"),
  created: z.number().int().describe("Unix seconds"),
  owned_by: z.string(),
  root: z
    .string()
    .describe(
      "vLLM: what the card serves; the base's id, `<run>@<version>` for runs and store aliases, the manifest key for a loaded version, the directory of a local alias",
    ),
  parent: z.string().nullable().describe("vLLM: the base's id for an adapter; null for the base"),
  max_model_len: z
    .number()
    .int()
    .positive()
    .nullable()
    .optional()
    .describe("vLLM: the base's context length in tokens (base card only); null without an engine"),
  state: versionStateSchema.optional().describe("Adapter cards: the version's state on this generator"),
  sha256: sha256Hex.nullable().optional().describe("Adapter cards: sha256 of adapter_model.safetensors"),
});
/** The shape {@link modelCardSchema} parses, as zod infers it. */
export type ModelCard = z.infer<typeof modelCardSchema>;

/** `GET /v1/models`: every servable model, the base first. */
export const modelListSchema = z.object({ object: z.literal("list"), data: z.array(modelCardSchema) });
/** The shape {@link modelListSchema} parses, as zod infers it. */
export type ModelList = z.infer<typeof modelListSchema>;
