/**
 * The fields of a chat message (`messages[N]`), from the OpenAI API reference: each implemented or
 * refused with 400 `unsupported_parameter` naming `messages.N.<field>`, as the request parameters
 * of registry.ts are. Implemented fields reach the chat template as vLLM hands them over (the
 * message's fields, by name). A refused field is accepted when it is null or empty, which asks for
 * nothing. docs/api.md prints this table; a unit test keeps the two equal.
 */
import type { ApiError } from "../../errors.ts";

/** One field of a chat message. */
export interface MessageFieldSpec {
  name: string;
  status: "implemented" | "refused";
  /** What it does here (implemented), or why it is refused. */
  doc: string;
}

/** Every known message field, in the order docs/api.md lists them. */
export const MESSAGE_FIELDS: readonly MessageFieldSpec[] = [
  {
    name: "role",
    status: "implemented",
    doc: "`system`, `developer`, `user`, `assistant` or `tool`.",
  },
  {
    name: "content",
    status: "implemented",
    doc: 'A string, or a list of at most 1024 `{"type": "text"}` parts (joined). Null or absent on an `assistant` message is "" (as OpenAI); other roles need it. Other part types (`image_url`, `input_audio`, `file`, `refusal`) are refused naming `messages.N.content.M.type`.',
  },
  {
    name: "name",
    status: "implemented",
    doc: "The participant's name; passed to the chat template as the message's `name` (as vLLM).",
  },
  {
    name: "tool_call_id",
    status: "implemented",
    doc: "On a `tool` message; passed to the chat template as the message's `tool_call_id` (as vLLM).",
  },
  {
    name: "tool_calls",
    status: "refused",
    doc: "Tool calling is not supported (null or [] is accepted).",
  },
  {
    name: "function_call",
    status: "refused",
    doc: "Function calling (deprecated) is not supported (null is accepted).",
  },
  { name: "audio", status: "refused", doc: "Audio is not supported (null is accepted)." },
];

const isEmpty = (v: unknown) =>
  v === null ||
  v === undefined ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === "object" && v !== null && Object.keys(v).length === 0);

const refusal = (param: string, message: string): ApiError => ({
  code: "unsupported_parameter",
  message: `${param}: ${message}`,
  param,
});

/**
 * The first refused message field, or non-text content part, that a chat body's messages set to
 * something non-empty, as an `unsupported_parameter` error naming its path; null when there is
 * none (malformed messages are left to the schema).
 */
export function refusedMessageField(body: Record<string, unknown>): ApiError | null {
  const messages = body.messages;
  if (!Array.isArray(messages)) return null;
  for (const [i, m] of messages.entries()) {
    if (typeof m !== "object" || m === null) continue;
    const fields = m as Record<string, unknown>;
    for (const f of MESSAGE_FIELDS) {
      if (f.status === "refused" && !isEmpty(fields[f.name]))
        return refusal(`messages.${i}.${f.name}`, `not supported: ${f.doc}`);
    }
    if (!Array.isArray(fields.content)) continue;
    for (const [j, part] of fields.content.entries()) {
      const type = (part as { type?: unknown } | null)?.type;
      if (typeof type === "string" && type !== "text")
        return refusal(
          `messages.${i}.content.${j}.type`,
          `content parts of type ${type} are not supported; only "text" parts are`,
        );
    }
  }
  return null;
}

/** The message fields as the Markdown table docs/api.md carries. */
export function renderMessageFieldTable(): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  return [
    "| message field | status | semantics, or why refused |",
    "| --- | --- | --- |",
    ...MESSAGE_FIELDS.map(
      (f) =>
        `| \`${f.name}\` | ${f.status === "implemented" ? "implemented" : "refused (400)"} | ${cell(f.doc)} |`,
    ),
  ].join("\n");
}
