/**
 * Structured logs: one JSON object a line on stdout, so they can be grepped in tests and shipped in
 * production. Every string in a line passes credential redaction (URLs' userinfo and credential
 * query values become `***`), whatever field it sits in.
 */
import { redactText } from "../egress/index.ts";

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  base: Record<string, unknown>,
  options: { clock?: { now(): number }; write?: (line: string) => void; quiet?: boolean } = {},
): Logger {
  const now = options.clock?.now ?? Date.now;
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const emit = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    if (options.quiet && level === "info") return;
    write(
      JSON.stringify({ t: new Date(now()).toISOString(), level, msg, ...base, ...fields }, errorReplacer),
    );
  };
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger({ ...base, ...fields }, options),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "string") return redactText(value);
  return value;
}
