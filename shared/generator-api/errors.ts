/**
 * The generator's error vocabulary and envelope: OpenAI's `{error: {message, type, param, code}}`
 * plus the request id, so OpenAI clients read our errors as they read OpenAI's.
 */
import { z } from "zod";

/**
 * Every `error.code` the generator answers with; the HTTP status of each is chosen at the
 * generator's HTTP edge:
 * - `unsupported_parameter`: a known OpenAI or vLLM parameter this server does not implement (OpenAI's code);
 * - `adapter_cache_full`: a `load_lora_adapter` whose weights would take what aliases pin past CACHE_MAX_MB;
 * - `adapter_held`: a run held until its store is repaired (the store's fault, not the request's; retry later);
 * - `payload_too_large`: a request body over the route's bound, refused while it streams in.
 */
export const GENERATOR_ERROR_CODES = [
  "bad_request",
  "unsupported_parameter",
  "context_length_exceeded",
  "unauthorized",
  "forbidden",
  "not_found",
  "model_not_found",
  "adapter_failed",
  "adapter_revoked",
  "adapter_cache_full",
  "adapter_held",
  "payload_too_large",
  "not_ready",
  "engine_unavailable",
  "internal",
] as const;
const generatorErrorCodeSchema = z.enum(GENERATOR_ERROR_CODES);
/** The shape {@link generatorErrorCodeSchema} parses, as zod infers it. */
export type GeneratorErrorCode = z.infer<typeof generatorErrorCodeSchema>;

/** OpenAI's error `type`, derived from the status: 5xx, 401, 403, anything else. */
const GENERATOR_ERROR_TYPES = [
  "server_error",
  "authentication_error",
  "permission_error",
  "invalid_request_error",
] as const;

/** The body of every generator error response. */
export const generatorErrorBodySchema = z.object({
  error: z.object({
    code: generatorErrorCodeSchema,
    message: z.string(),
    type: z.enum(GENERATOR_ERROR_TYPES),
    param: z.string().nullable().describe("The request field at fault (OpenAI's `param`), e.g. `model`"),
    requestId: z.string().nullable().describe("The request's id, as logged and sent in `x-request-id`"),
  }),
});
/** The shape {@link generatorErrorBodySchema} parses, as zod infers it. */
export type GeneratorErrorBody = z.infer<typeof generatorErrorBodySchema>;
