/**
 * The generator's wire contracts, one zod schema (and its inferred type) per request, response and
 * error body: the generator's routes produce and validate with them; its clients (the trainer's
 * rollouts, the local stack's demo, tests, benches) parse with them.
 */
export {
  type AdapterList,
  type AdapterRow,
  adapterListSchema,
  adapterRowSchema,
  REFUSED_VERSION_ROWS,
  type Readiness,
  readinessSchema,
  type WebhookAccepted,
  webhookAcceptedSchema,
} from "./adapters.ts";
export {
  type Completion,
  type CompletionChoice,
  chatCompletionSchema,
  completionChoiceSchema,
  completionChunkChoiceSchema,
  completionSchema,
} from "./completions.ts";
export {
  GENERATOR_ERROR_CODES,
  type GeneratorErrorBody,
  type GeneratorErrorCode,
  generatorErrorBodySchema,
} from "./errors.ts";
export {
  loadLoraRequestSchema,
  unloadLoraRequestSchema,
} from "./lora-admin.ts";
export { type ModelCard, type ModelList, modelCardSchema, modelListSchema } from "./models.ts";
