/**
 * Structured logs through pino (https://getpino.io): one JSON object a line on stdout (`level`, `t`,
 * the logger's fields, `requestId` inside a request, the call's fields, `msg`), so they can be
 * grepped in tests and shipped in production. Every string in a line passes credential redaction
 * (URLs' userinfo and credential query values become `***`), whatever field it sits in.
 */
import { type Level, type Logger as PinoLogger, pino } from "pino";
import { redactText } from "../egress/index.ts";
import { currentRequestId } from "./request-id.ts";

/** The levels `LOG_LEVEL` takes, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of `LOG_LEVELS`: a logger writes lines of this level and above. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A JSON-lines logger; `child` adds fields to every line it writes. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** How a logger writes: its level (`info` by default), its clock for `t`, and where lines go. */
interface LoggerOptions {
  /** Lines below it are dropped. @default "info" */
  level?: LogLevel;
  /** Stamps `t` (ISO 8601). @default Date.now */
  clock?: { now(): number };
  /** Receives each line, without its newline. @default a synchronous write to stdout */
  write?: (line: string) => void;
}

/**
 * A logger writing one JSON object a line with `base`'s fields. Lines logged while a request is
 * served carry its `requestId` (`request-id.ts`). Errors in fields are written as `{name, message}`,
 * and every string (the message too) passes `redactText`.
 */
export function createLogger(base: Record<string, unknown>, options: LoggerOptions = {}): Logger {
  const now = options.clock?.now ?? Date.now;
  const write = options.write;
  const p = pino(
    {
      level: options.level ?? "info",
      base: clean(base),
      timestamp: () => `,"t":"${new Date(now()).toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => {
        const id = currentRequestId();
        return id === undefined ? {} : { requestId: id };
      },
    },
    write === undefined
      ? // Synchronous, so that the lines before a process.exit (a configuration error) are not lost.
        pino.destination({ dest: 1, sync: true })
      : { write: (line: string) => write(line.endsWith("\n") ? line.slice(0, -1) : line) },
  );
  return wrap(p);
}

function wrap(p: PinoLogger): Logger {
  const at =
    (level: Level) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      if (!p.isLevelEnabled(level)) return;
      if (fields === undefined) p[level](redactText(msg));
      else p[level](clean(fields), redactText(msg));
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (fields) => wrap(p.child(clean(fields))),
  };
}

/** The fields as they will be written: errors as `{name, message}`, every string redacted. */
function clean(fields: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(fields, errorReplacer)) as Record<string, unknown>;
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "string") return redactText(value);
  return value;
}
