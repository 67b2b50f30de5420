/**
 * The trainer's OpenAPI 3.1 document, served at `GET /openapi.json`: every route of app.ts, its
 * request and response bodies as the zod schemas the routes validate and answer with
 * (`shared/trainer-api`, the run config schema), its error statuses from the status table of
 * http-errors.ts, and which routes need the bearer token (`isPublic` in app.ts; openapi.test.ts
 * checks both against the app).
 */

import {
  type ApiRoute,
  commonRoutes,
  errorResponses,
  jsonResponse,
  type OpenApiDocument,
  openApiDocument,
} from "@loracast/shared/openapi";
import {
  fleetSchema,
  publishResultSchema,
  rollbackRequestSchema,
  rollbackResultSchema,
  runInfoSchema,
  runListSchema,
  runStreamEventSchema,
  runVersionsSchema,
  subscribeRequestSchema,
  subscriptionListSchema,
  subscriptionSchema,
  type TrainerErrorCode,
  trainerErrorBodySchema,
  trainerReadinessSchema,
} from "@loracast/shared/trainer-api";
import { z } from "zod";
import pkg from "../package.json" with { type: "json" };
import { DASHBOARD_ASSET_NAMES } from "./dashboard/index.ts";
import { STATUS } from "./http-errors.ts";
import { runConfigSchema } from "./runs/config.ts";

const errorBody = trainerErrorBodySchema.meta({ id: "TrainerError" });
const runEvent = runStreamEventSchema.meta({ id: "RunStreamEvent" });
/** `security: []`: answered without the token (`isPublic` in app.ts). */
const PUBLIC = { security: [] };

const errors = (...codes: TrainerErrorCode[]) => errorResponses(codes, STATUS, errorBody);
/** Every route behind the token answers 401 without it; a route may fail inside (500). */
const secured = (...codes: TrainerErrorCode[]) => errors("unauthorized", ...codes, "internal");
/** Every route that reads a JSON body refuses one over 1 MiB (413). */
const jsonBody = (schema: z.ZodType, description: string) => ({
  body: { required: true, description, content: { "application/json": { schema } } },
});
const runParam = (name: "id" | "run") => ({
  params: z.object({ [name]: z.string().describe("The run's name (`run` of its config)") }),
});
const noModel =
  "`conflict` also when this trainer has no base model (TRAINER_MODEL_DIR unset) and cannot train.";

const ROUTES: ApiRoute[] = [
  ...commonRoutes(PUBLIC),
  {
    method: "get",
    path: "/readyz",
    summary:
      "Readiness: the store answers, the webhook outbox is loaded, the model (if configured) is loaded",
    description: "503 `not_ready` names every failed check. The store check's answer is reused for a second.",
    ...PUBLIC,
    responses: {
      200: jsonResponse("Ready, with each check", trainerReadinessSchema),
      ...errors("not_ready"),
    },
  },
  {
    method: "post",
    path: "/v1/runs",
    summary: "Start a training run",
    description: `The whole config is checked (its dataset lines included) before the run starts; 400 \`invalid_config\` names the first invalid field. ${noModel}`,
    request: jsonBody(
      runConfigSchema,
      "The run config: every field but run, algorithm, dataset and steps has a default",
    ),
    responses: {
      201: jsonResponse("The run, started", runInfoSchema),
      ...secured("invalid_config", "conflict", "payload_too_large", "store_unavailable"),
    },
  },
  {
    method: "get",
    path: "/v1/runs",
    summary: "Every run this trainer knows",
    description: noModel,
    responses: { 200: jsonResponse("The runs", runListSchema), ...secured("conflict") },
  },
  {
    method: "get",
    path: "/v1/runs/{id}",
    summary: "A run: status, step, newest version, last metrics, config (credentials redacted)",
    request: runParam("id"),
    responses: { 200: jsonResponse("The run", runInfoSchema), ...secured("not_found", "conflict") },
  },
  {
    method: "post",
    path: "/v1/runs/{id}/cancel",
    summary: "Cancel a running run",
    request: runParam("id"),
    responses: {
      200: jsonResponse("The run, cancelled", runInfoSchema),
      ...secured("not_found", "conflict"),
    },
  },
  {
    method: "get",
    path: "/v1/runs/{id}/events",
    summary: "Follow a run's events (Server-Sent Events)",
    description:
      "Replays the run's whole history, then follows it until the run ends. Each SSE event has `id:` the event's `seq`, `event:` its `type`, and `data:` one RunStreamEvent (components.schemas.RunStreamEvent) as JSON. Reconnect with `Last-Event-ID` to continue after that event. While the run is quiet, an SSE comment (`: ping`) comes every TRAINER_SSE_HEARTBEAT_S seconds (15 by default); clients ignore it.",
    ...PUBLIC,
    request: {
      ...runParam("id"),
      headers: z.object({
        "last-event-id": z
          .string()
          .regex(/^\d{1,15}$/)
          .optional()
          .describe("The `seq` of the last event received: the stream continues after it"),
      }),
    },
    responses: {
      200: {
        description: "The event stream; ends after the run's `status` event",
        content: { "text/event-stream": { schema: z.string().describe("SSE events, data: RunStreamEvent") } },
      },
      ...errors("bad_request", "not_found", "conflict", "internal"),
    },
  },
  {
    method: "post",
    path: "/v1/runs/{run}/adapters",
    summary: "Publish a PEFT adapter trained elsewhere as the run's next version",
    description:
      "multipart/form-data with two files, in PEFT's names; other parts are ignored. The body is bounded by MAX_UPLOAD_MB as it streams, and weights whose safetensors header is invalid are refused as soon as the header has arrived.",
    request: {
      ...runParam("run"),
      body: {
        required: true,
        content: {
          "multipart/form-data": {
            schema: z.object({
              "adapter_config.json": z.string().describe("PEFT adapter_config.json (a file part)"),
              "adapter_model.safetensors": z
                .string()
                .describe("PEFT adapter_model.safetensors (a file part)"),
            }),
            encoding: {
              "adapter_config.json": { contentType: "application/json" },
              "adapter_model.safetensors": { contentType: "application/octet-stream" },
            },
          },
        },
      },
    },
    responses: {
      201: jsonResponse("The version published", publishResultSchema),
      ...secured(
        "bad_request",
        "invalid_adapter",
        "not_found",
        "conflict",
        "payload_too_large",
        "store_unavailable",
      ),
    },
  },
  {
    method: "get",
    path: "/v1/runs/{run}/versions",
    summary: "The store's view of a run: every version, its state and sha256",
    ...PUBLIC,
    request: runParam("run"),
    responses: {
      200: jsonResponse("The run's versions", runVersionsSchema),
      ...errors("bad_request", "store_unavailable", "internal"),
    },
  },
  {
    method: "post",
    path: "/v1/runs/{run}/rollback",
    summary: "Make an earlier version current; every later one is revoked",
    request: { ...runParam("run"), ...jsonBody(rollbackRequestSchema, "The version to go back to") },
    responses: {
      200: jsonResponse("The current version and those revoked", rollbackResultSchema),
      ...secured("bad_request", "not_found", "conflict", "payload_too_large", "store_unavailable"),
    },
  },
  {
    method: "get",
    path: "/v1/subscriptions",
    summary: "Webhook subscribers (URLs redacted)",
    responses: { 200: jsonResponse("The subscribers", subscriptionListSchema), ...secured() },
  },
  {
    method: "post",
    path: "/v1/subscriptions",
    summary: "Register a webhook subscriber",
    description: "The URL must pass the trainer's egress policy (see README).",
    request: jsonBody(subscribeRequestSchema, "The subscriber's URL"),
    responses: {
      201: jsonResponse("The subscription", subscriptionSchema),
      ...secured("bad_request", "payload_too_large"),
    },
  },
  {
    method: "delete",
    path: "/v1/subscriptions/{id}",
    summary: "Remove a registered subscriber (WEBHOOK_SUBSCRIBERS entries cannot be removed)",
    request: { params: z.object({ id: z.string().describe("The subscription's id") }) },
    responses: { 204: { description: "Removed" }, ...secured("not_found") },
  },
  {
    method: "get",
    path: "/v1/fleet",
    summary: "Every generator the trainer notifies, with the adapter state its GET /v1/adapters reports",
    description:
      "Asked at the time of the request: each webhook target (static and registered subscribers, every address of a `dns+` subscriber), at most 64, each with a 2 s timeout.",
    request: {
      query: z.object({
        run: z.string().optional().describe("Only this run's versions (a run name, else 400)"),
      }),
    },
    responses: { 200: jsonResponse("The fleet", fleetSchema), ...secured("bad_request") },
  },
  {
    method: "get",
    path: "/",
    summary: "Redirects to the dashboard",
    ...PUBLIC,
    responses: {
      302: {
        description: "To /dashboard",
        headers: z.object({ location: z.literal("/dashboard") }),
      },
    },
  },
  {
    method: "get",
    path: "/dashboard",
    summary: "The dashboard page (runs, live curves, fleet); it asks for the token in the browser",
    ...PUBLIC,
    responses: { 200: { description: "The page", content: { "text/html": { schema: z.string() } } } },
  },
  {
    method: "get",
    path: "/dashboard/assets/{name}",
    summary: "The dashboard's scripts and stylesheets",
    ...PUBLIC,
    request: { params: z.object({ name: z.enum(DASHBOARD_ASSET_NAMES as [string, ...string[]]) }) },
    responses: {
      200: {
        description: "The asset",
        content: { "text/javascript": { schema: z.string() }, "text/css": { schema: z.string() } },
      },
      ...errors("not_found"),
    },
  },
];

/**
 * The trainer's OpenAPI 3.1 document (bearer auth on every route but the public ones). Throws if a
 * route's schema has no JSON Schema form (a bug the unit test finds); app.ts builds it once.
 */
export function trainerOpenApi(): OpenApiDocument {
  return openApiDocument({
    title: "loracast trainer",
    version: pkg.version,
    description:
      "Trains LoRA adapters (GRPO, online DPO, RLOO, SFT), publishes each version to the store and notifies generators with Standard Webhooks. Errors: `{error: {code, message, requestId}}`.",
    routes: ROUTES,
    securitySchemes: {
      bearerAuth: { type: "http", scheme: "bearer", description: "TRAINER_API_TOKEN" },
    },
    security: [{ bearerAuth: [] }],
    components: [runEvent],
  });
}
