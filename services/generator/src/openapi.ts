/**
 * The generator's OpenAPI 3.1 document, served at `GET /openapi.json`: every route of app.ts, its
 * request and response bodies as the zod schemas the routes validate and answer with (the
 * completions and chat request schemas of inference/params, `shared/generator-api`, the webhook
 * event of `shared/manifest`), and its error statuses from the status table of errors.ts
 * (openapi.test.ts checks the routes against the app).
 */

import {
  adapterListSchema,
  chatCompletionSchema,
  completionSchema,
  type GeneratorErrorCode,
  generatorErrorBodySchema,
  loadLoraRequestSchema,
  modelCardSchema,
  modelListSchema,
  readinessSchema,
  unloadLoraRequestSchema,
  webhookAcceptedSchema,
} from "@loracast/shared/generator-api";
import { adapterEventSchema } from "@loracast/shared/manifest";
import {
  type ApiRoute,
  commonRoutes,
  errorResponses,
  jsonResponse,
  type OpenApiDocument,
  openApiDocument,
} from "@loracast/shared/openapi";
import { z } from "zod";
import pkg from "../package.json" with { type: "json" };
import { STATUS } from "./errors.ts";
import { chatRequestSchema, completionRequestSchema } from "./inference/params/schema.ts";

const errorBody = generatorErrorBodySchema.meta({ id: "GeneratorError" });
const errors = (...codes: GeneratorErrorCode[]) => errorResponses(codes, STATUS, errorBody);

/** The headers every completion (and every stream) names the adapter behind it with. */
const adapterHeaders = z.object({
  "x-loracast-adapter-run": z.string().describe("The run that served it; `none` for the base"),
  "x-loracast-adapter-version": z.string().describe("Its version; `none` for the base"),
  "x-loracast-adapter-sha256": z
    .string()
    .describe("sha256 of its adapter_model.safetensors; `none` for the base"),
});

/** What both generation endpoints can fail with. */
const GENERATION_ERRORS: GeneratorErrorCode[] = [
  "bad_request",
  "unsupported_parameter",
  "context_length_exceeded",
  "model_not_found",
  "adapter_revoked",
  "adapter_failed",
  "payload_too_large",
  "adapter_held",
  "engine_unavailable",
  "internal",
];

const REQUEST_NOTES =
  "`null` means absent for every parameter; unknown keys are ignored; a known OpenAI or vLLM parameter that is not implemented is refused with 400 `unsupported_parameter` naming it (docs/api.md lists them all).";

function generation(
  path: string,
  summary: string,
  request: z.ZodType,
  answer: z.ZodType,
  chunk: string,
): ApiRoute {
  return {
    method: "post",
    path,
    summary,
    description: `${REQUEST_NOTES} With \`stream: true\` the answer is Server-Sent Events: each \`data:\` one ${chunk} as JSON, then \`data: [DONE]\`.`,
    request: { body: { required: true, content: { "application/json": { schema: request } } } },
    responses: {
      200: {
        description: "The completion, whole (JSON) or streamed (SSE)",
        headers: adapterHeaders,
        content: {
          "application/json": { schema: answer },
          "text/event-stream": { schema: z.string().describe(`SSE events, data: ${chunk}, then [DONE]`) },
        },
      },
      ...errors(...GENERATION_ERRORS),
    },
  };
}

/** `load_lora_adapter` and `unload_lora_adapter`: vLLM's plain-text success strings. */
function loraAdmin(path: string, summary: string, request: z.ZodType, codes: GeneratorErrorCode[]): ApiRoute {
  return {
    method: "post",
    path,
    summary,
    security: [{ adminToken: [] }, {}],
    request: { body: { required: true, content: { "application/json": { schema: request } } } },
    responses: {
      200: { description: "vLLM's success text", content: { "text/plain": { schema: z.string() } } },
      ...errors("bad_request", "unauthorized", "forbidden", ...codes, "payload_too_large", "internal"),
    },
  };
}

const ROUTES: ApiRoute[] = [
  ...commonRoutes(),
  {
    method: "get",
    path: "/readyz",
    summary: "Readiness: the latest adapter versions are resolved",
    responses: {
      200: jsonResponse("Ready, with each run's active version", readinessSchema),
      ...errors("not_ready"),
    },
  },
  generation(
    "/v1/completions",
    "OpenAI completions (vLLM extras)",
    completionRequestSchema,
    completionSchema,
    "text_completion chunk",
  ),
  generation(
    "/v1/chat/completions",
    "OpenAI chat completions (vLLM extras)",
    chatRequestSchema,
    chatCompletionSchema,
    "chat.completion.chunk",
  ),
  {
    method: "get",
    path: "/v1/models",
    summary: "Servable models: the base, runs, aliases, loaded versions (vLLM ModelCards)",
    responses: { 200: jsonResponse("The models", modelListSchema) },
  },
  {
    method: "get",
    path: "/v1/models/{id}",
    summary: "One servable model (OpenAI models.retrieve)",
    request: {
      params: z.object({ id: z.string().describe("A model id; one holding `/` is sent URL-encoded") }),
    },
    responses: { 200: jsonResponse("The model", modelCardSchema), ...errors("model_not_found") },
  },
  {
    method: "get",
    path: "/v1/adapters",
    summary: "Every version this generator knows: state, sha256, failure reason; store records refused",
    responses: { 200: jsonResponse("The adapter versions", adapterListSchema) },
  },
  loraAdmin("/v1/load_lora_adapter", "Serve an adapter under a name (vLLM)", loadLoraRequestSchema, [
    "model_not_found",
    "adapter_failed",
    "adapter_revoked",
    "adapter_cache_full",
    "adapter_held",
  ]),
  loraAdmin(
    "/v1/unload_lora_adapter",
    "Stop serving a name loaded with load_lora_adapter (vLLM)",
    unloadLoraRequestSchema,
    ["model_not_found"],
  ),
  {
    method: "post",
    path: "/v1/webhooks/adapters",
    summary: "An adapter event from the trainer (Standard Webhooks)",
    description:
      "Signed with the shared WEBHOOK_SECRET (Standard Webhooks: HMAC-SHA256 over `id.timestamp.body`); a replayed `webhook-id` or a timestamp outside the tolerance is refused. Answered at once; the pull runs in the background.",
    request: {
      headers: z.object({
        "webhook-id": z.string().describe("The event's id, remembered against replays"),
        "webhook-timestamp": z.string().describe("Unix seconds when it was sent"),
        "webhook-signature": z.string().describe("`v1,<base64 HMAC-SHA256>`, space-separated when several"),
      }),
      body: { required: true, content: { "application/json": { schema: adapterEventSchema } } },
    },
    responses: {
      202: jsonResponse("Accepted: whether this generator follows the run", webhookAcceptedSchema),
      ...errors("bad_request", "unauthorized", "payload_too_large", "internal"),
    },
  },
];

/**
 * The generator's OpenAPI 3.1 document. Throws if a route's schema has no JSON Schema form (a bug
 * the unit test finds); app.ts builds it once.
 */
export function generatorOpenApi(): OpenApiDocument {
  return openApiDocument({
    title: "loracast generator",
    version: pkg.version,
    description:
      "Pulls, verifies and activates LoRA adapter versions, and serves them through an OpenAI/vLLM-compatible API. Errors use OpenAI's envelope `{error: {message, type, param, code}}` plus `requestId`.",
    routes: ROUTES,
    securitySchemes: {
      adminToken: {
        type: "http",
        scheme: "bearer",
        description:
          "GENERATOR_ADMIN_TOKEN, for load_lora_adapter and unload_lora_adapter; without it they answer only on a loopback bind",
      },
    },
  });
}
