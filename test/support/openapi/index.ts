/**
 * Checks of the services' OpenAPI documents (`GET /openapi.json`): the document against the
 * OpenAPI 3.1 specification's JSON Schema (`@seriousme/openapi-schema-validator`), its operations
 * against the Hono app's route table, and real responses against the document's own schemas (Ajv,
 * JSON Schema 2020-12: the dialect of OpenAPI 3.1's Schema Object).
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

type Json = Record<string, unknown>;

/**
 * Why `doc` is not a valid OpenAPI 3.1 document: the validator's findings as `<path>: <message>`
 * lines; empty when it is one. A document of another OpenAPI version is one finding.
 */
export async function openApi31Findings(doc: object): Promise<string[]> {
  const validator = new Validator();
  const result = await validator.validate(doc as Json);
  const findings: string[] = [];
  if (validator.version !== "3.1") findings.push(`openapi: version ${validator.version}, expected 3.1`);
  if (result.valid) return findings;
  if (typeof result.errors === "string") return [...findings, result.errors];
  return [
    ...findings,
    ...(result.errors ?? []).map((e) => `${e.instancePath || "/"}: ${e.message ?? e.keyword}`),
  ];
}

/** One response as a client received it, to check against the document. */
export interface ObservedResponse {
  method: string;
  /** The OpenAPI path template the request matched (`/v1/runs/{id}`), as the document keys it. */
  path: string;
  status: number;
  /** The media type without parameters (`application/json`, `text/plain`). */
  contentType: string;
  body: unknown;
}

/** Ajv for OpenAPI 3.1 schemas (JSON Schema 2020-12, formats such as `date-time` checked). */
function openApiAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  return ajv;
}

/** Compiles `schema`, one of `doc`'s, beside a copy of its components, so `#/components/…` refs resolve. */
const compileIn = (ajv: Ajv2020, doc: Json, schema: Json): ValidateFunction =>
  ajv.compile({ ...schema, components: doc.components });

const findingsOf = (validate: ValidateFunction, where: string): string[] =>
  (validate.errors ?? []).map((e) => `${where}: ${e.instancePath || "/"} ${e.message ?? e.keyword}`);

/**
 * A checker of responses against `document`: for one response, why it does not match what the
 * document says that operation answers with that status and media type (an undocumented operation,
 * status or media type is a finding too); empty when it matches. Schemas are compiled once each.
 */
export function responseChecker(document: object): (r: ObservedResponse) => string[] {
  const doc = document as Json;
  const ajv = openApiAjv();
  const compiled = new Map<string, ValidateFunction>();
  return (r) => {
    const where = `${r.method.toUpperCase()} ${r.path} ${r.status} ${r.contentType}`;
    const operation = (doc.paths as Record<string, Json | undefined> | undefined)?.[r.path]?.[
      r.method.toLowerCase()
    ] as Json | undefined;
    if (operation === undefined) return [`${where}: the document has no such operation`];
    const response = (operation.responses as Record<string, Json | undefined>)[String(r.status)];
    if (response === undefined) return [`${where}: status ${r.status} is not documented`];
    // No body (a 204, a redirect): the documented status is all there is to match.
    if (r.contentType === "" && r.body === "") return [];
    // A documented media type may carry parameters (`text/plain; version=0.0.4`): matched without them.
    const content = Object.entries((response.content ?? {}) as Record<string, Json>);
    const media = content.find(([type]) => type.split(";")[0]?.trim() === r.contentType)?.[1];
    if (media?.schema === undefined) return [`${where}: media type not documented`];
    let validate = compiled.get(where);
    if (validate === undefined) {
      validate = compileIn(ajv, doc, media.schema as Json);
      compiled.set(where, validate);
    }
    return validate(r.body) ? [] : findingsOf(validate, where);
  };
}

/**
 * A checker of values against the component schema `name` of `document` (what an SSE event's
 * `data` carries, say): why a value does not match it; empty when it does.
 */
export function componentChecker(document: object, name: string): (value: unknown) => string[] {
  const doc = document as Json;
  const validate = compileIn(openApiAjv(), doc, { $ref: `#/components/schemas/${name}` });
  return (value) => (validate(value) ? [] : findingsOf(validate, name));
}

/** `"GET /v1/runs/{id}"`: one operation in a route table. */
const operation = (method: string, path: string): string => `${method.toUpperCase()} ${path}`;

/**
 * The operations a Hono app serves, as `"METHOD /path/{param}"`, sorted and unique. Hono's `:id`
 * (and `:id{regex}`) become OpenAPI's `{id}`; middleware (method `ALL`) is not an operation.
 */
export function honoRouteTable(app: { routes: readonly { method: string; path: string }[] }): string[] {
  const ops = app.routes
    .filter((r) => r.method !== "ALL")
    .map((r) => operation(r.method, r.path.replace(/:(\w+)(?:\{[^}]*\})?/g, "{$1}")));
  return [...new Set(ops)].sort();
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/** The operations a document lists, as `"METHOD /path/{param}"`, sorted. */
export function documentRouteTable(doc: object): string[] {
  const ops: string[] = [];
  const paths = ((doc as Json).paths ?? {}) as Record<string, Json>;
  for (const [path, item] of Object.entries(paths))
    for (const method of METHODS) if (item[method] !== undefined) ops.push(operation(method, path));
  return ops.sort();
}

/**
 * Asserts that `doc` is a valid OpenAPI 3.1 document, lists exactly the operations `app` serves
 * (a route missing from either side fails, named), and is what `GET /openapi.json` answers.
 */
export async function assertDocumentsApp(
  doc: object,
  app: {
    routes: readonly { method: string; path: string }[];
    request(path: string): Response | Promise<Response>;
  },
): Promise<void> {
  assert.deepEqual(await openApi31Findings(doc), []);
  assert.deepEqual(documentRouteTable(doc), honoRouteTable(app));
  const res = await app.request("/openapi.json");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), JSON.parse(JSON.stringify(doc)));
}
