/**
 * OpenAPI 3.1 documents built from the zod schemas the routes validate with (the wire contracts of
 * `shared/trainer-api` and `shared/generator-api`), through `@asteasolutions/zod-to-openapi`'s
 * `OpenApiGeneratorV31`, which converts each schema with zod's own JSON Schema support. The checks
 * that a document matches its app are the dev support's (`test/support/openapi`).
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import { PROMETHEUS_CONTENT_TYPE } from "../platform/index.ts";

/**
 * One operation of a document: method, OpenAPI path (`/v1/runs/{id}`), request and responses as
 * zod schemas (`RouteConfig` of `@asteasolutions/zod-to-openapi`).
 */
export type ApiRoute = RouteConfig;

/** A generated OpenAPI 3.1 document (`OpenAPIObject` of `openapi3-ts/oas31`), served as JSON. */
export type OpenApiDocument = ReturnType<OpenApiGeneratorV31["generateDocument"]>;

type Responses = ApiRoute["responses"];
type SecuritySchemes = NonNullable<NonNullable<OpenApiDocument["components"]>["securitySchemes"]>;

/** What a service's document is made of. */
export interface DocumentSpec {
  /** `info.title`, `info.version` (the service's package version), `info.description`. */
  title: string;
  version: string;
  description: string;
  /** Every route the service's Hono app serves (a check compares the two). */
  routes: ApiRoute[];
  /** Security schemes by name, and those every operation needs unless it sets its own `security`. */
  securitySchemes?: SecuritySchemes;
  security?: Record<string, string[]>[];
  /**
   * Schemas listed under `components.schemas` though no JSON body names them: what each event of a
   * `text/event-stream` response carries as `data`. Each needs a `.meta({ id })`, its component name.
   */
  components?: z.ZodType[];
}

/**
 * Builds the OpenAPI 3.1 document of a service from its routes' zod schemas; schemas with a
 * `.meta({ id })` become `components.schemas` entries referenced by `$ref`. Throws if a schema
 * cannot be expressed in JSON Schema (a bug of the route list, found by the service's unit test).
 */
export function openApiDocument(spec: DocumentSpec): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  for (const [name, scheme] of Object.entries(spec.securitySchemes ?? {}))
    registry.registerComponent("securitySchemes", name, scheme);
  for (const route of spec.routes) registry.registerPath(route);
  // As `{type: "schema"}` definitions: the generator tells a bare schema from a definition by a
  // `type` key, which zod 4 schemas have too.
  const components = (spec.components ?? []).map((schema) => ({ type: "schema" as const, schema }));
  const generator = new OpenApiGeneratorV31([...registry.definitions, ...components]);
  return generator.generateDocument({
    openapi: "3.1.0",
    info: { title: spec.title, version: spec.version, description: spec.description },
    ...(spec.security === undefined ? {} : { security: spec.security }),
  });
}

/** A 2xx (or other) response whose body is JSON of `schema`. */
export function jsonResponse(description: string, schema: z.ZodType): Responses[string] {
  return { description, content: { "application/json": { schema } } };
}

/**
 * The error responses of an operation: one entry per status that `codes` map to through the
 * service's own code → status table (`statusOf`), each with the service's error envelope and a
 * description naming its codes, so the document follows the status table instead of repeating it.
 */
export function errorResponses<C extends string>(
  codes: readonly C[],
  statusOf: Readonly<Record<C, number>>,
  envelope: z.ZodType,
): Responses {
  const byStatus = new Map<number, C[]>();
  for (const code of codes) byStatus.set(statusOf[code], [...(byStatus.get(statusOf[code]) ?? []), code]);
  const out: Responses = {};
  for (const [status, named] of [...byStatus].sort(([a], [b]) => a - b)) {
    const list = named.map((c) => `\`${c}\``).join(", ");
    out[String(status)] = jsonResponse(`Error: ${list}`, envelope);
  }
  return out;
}

/** The JSON Schema of this document itself, as `GET /openapi.json` answers it: any JSON object. */
const openApiDocumentSchema = z
  .record(z.string(), z.unknown())
  .describe("This document: OpenAPI 3.1, generated from the routes' zod schemas");

/**
 * `GET /healthz`, `GET /metrics` and `GET /openapi.json`, which every service answers alike;
 * `extra` goes into each (`{security: []}` where the service needs a token elsewhere).
 */
export function commonRoutes(extra: Partial<ApiRoute> = {}): ApiRoute[] {
  return [
    {
      method: "get",
      path: "/healthz",
      summary: "Liveness: the process answers",
      responses: { 200: jsonResponse("Alive", z.object({ status: z.literal("ok") })) },
      ...extra,
    },
    {
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics (text exposition format 0.0.4)",
      responses: {
        200: { description: "Metrics", content: { [PROMETHEUS_CONTENT_TYPE]: { schema: z.string() } } },
      },
      ...extra,
    },
    {
      method: "get",
      path: "/openapi.json",
      summary: "This document",
      responses: {
        200: jsonResponse("OpenAPI 3.1, generated from the routes' zod schemas", openApiDocumentSchema),
      },
      ...extra,
    },
  ];
}
