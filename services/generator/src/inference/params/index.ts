/**
 * The request contract of /v1/completions and /v1/chat/completions: the parameter registry, the
 * zod schemas derived from it, and `parseRequest`, which refuses known-but-unsupported parameters
 * by name before the schema reads the rest.
 */
import type { z } from "zod";
import type { ApiError } from "../../errors.ts";
import { refusedMessageField } from "./message-fields.ts";
import { type Endpoint, parametersOf } from "./registry.ts";
import {
  type ChatRequest,
  type CompletionRequest,
  chatRequestSchema,
  completionRequestSchema,
} from "./schema.ts";

export {
  MESSAGE_FIELDS,
  renderMessageFieldTable,
} from "./message-fields.ts";
export { type Endpoint, PARAMETERS } from "./registry.ts";
export { renderParameterTable, tableCells } from "./render.ts";
export {
  type ChatRequest,
  chatFields,
  completionFields,
  type SamplingFields,
} from "./schema.ts";

/**
 * The first refused parameter the body sets to something other than null or a value that asks
 * for nothing, as an `unsupported_parameter` error naming it; null when there is none.
 */
export function refusedParameter(body: unknown, endpoint: Endpoint): ApiError | null {
  if (typeof body !== "object" || body === null) return null;
  const fields = body as Record<string, unknown>;
  for (const p of parametersOf(endpoint)) {
    if (p.status !== "refused" || !(p.name in fields)) continue;
    const value = fields[p.name];
    if (value === null || p.noop?.accepts(value) === true) continue;
    const accepted = p.noop === undefined ? "" : ` (only null or ${p.noop.describe} is accepted)`;
    return {
      code: "unsupported_parameter",
      message: `${p.name} is not supported: ${p.doc}${accepted}`,
      param: p.name,
    };
  }
  return null;
}

type Parsed<E extends Endpoint> = E extends "completions" ? CompletionRequest : ChatRequest;

/** A request body checked against its endpoint's contract: refusals (parameters, then message fields) first, then the schema's first issue. */
export function parseRequest<E extends Endpoint>(
  body: unknown,
  endpoint: E,
): { ok: true; value: Parsed<E> } | { ok: false; error: ApiError } {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return { ok: false, error: { code: "bad_request", message: "the body must be a JSON object" } };
  const refusal =
    refusedParameter(body, endpoint) ??
    (endpoint === "chat" ? refusedMessageField(body as Record<string, unknown>) : null);
  if (refusal !== null) return { ok: false, error: refusal };
  const schema: z.ZodType = endpoint === "completions" ? completionRequestSchema : chatRequestSchema;
  const parsed = schema.safeParse(body);
  if (parsed.success) return { ok: true, value: parsed.data as Parsed<E> };
  const issue = parsed.error.issues[0];
  const param = issue?.path.join(".") ?? "";
  return {
    ok: false,
    error: { code: "bad_request", message: `${param}: ${issue?.message ?? "invalid"}`, param },
  };
}
