/**
 * Structured logs: one JSON object a line on stdout, so they can be grepped in tests and shipped in
 * production. Every string in a line passes credential redaction (URLs' userinfo and credential
 * query values become `***`), whatever field it sits in.
 */
import { redactText } from "../egress/index.ts";

/** A JSON-lines logger; `child` adds fields to every line it writes. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * A logger writing one JSON object a line (`t`, `level`, `msg`, then `base` and the call's fields)
 * to stdout, or to `options.write`. `quiet` drops `info` lines; `clock` stamps `t` (ISO 8601). Errors
 * in fields are written as `{name, message}`, and every string passes `redactText`.
 */
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
