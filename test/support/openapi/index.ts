/**
 * Checks of the services' OpenAPI documents (`GET /openapi.json`): the document against the
 * OpenAPI 3.1 specification's JSON Schema (`@seriousme/openapi-schema-validator`), and real
 * responses against the document's own schemas (Ajv, JSON Schema 2020-12: the dialect of OpenAPI
 * 3.1's Schema Object).
 */
import { Validator } from "@seriousme/openapi-schema-validator";

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
