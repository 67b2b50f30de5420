/**
 * Command lines of every entry point (services, `npm run build-model`, benches, conformance):
 * `node:util`'s `parseArgs` with `--help` added. `--help` prints the usage (every flag, and every
 * environment variable the entry point reads, listed from its zod env schema) and exits 0; an
 * unknown flag, a missing value or a stray argument prints the error and the usage to stderr and
 * exits 2.
 */
import { parseArgs } from "node:util";
import { z } from "zod";

/** One flag: `parseArgs`' option with what `--help` says about it. */
interface Flag {
  type: "string" | "boolean";
  default?: string | boolean;
  short?: string;
  /** One line: what it sets, with its values or unit. */
  help: string;
}

/** An entry point's command line. */
export interface CommandLine<F extends Record<string, Flag>> {
  /** The usage line, from how it is run: `npm run build-model -- <checkpoint-dir> <out-dir> [flags]`. */
  usage: string;
  /** What it does, one or two sentences. */
  about: string;
  flags: F;
  /** Positional arguments are allowed (the usage line names them). @default false */
  positionals?: boolean;
  /** The environment it reads, as parsed at start; listed by `--help` with defaults and types. */
  env?: z.ZodType;
}

type Values<F extends Record<string, Flag>> = {
  [K in keyof F]: F[K]["type"] extends "boolean"
    ? boolean | (F[K]["default"] extends boolean ? never : undefined)
    : string | (F[K]["default"] extends string ? never : undefined);
};

/** What one environment variable of a JSON Schema (zod's `toJSONSchema`) is shown as. */
interface JsonSchemaProperty {
  default?: unknown;
  type?: string;
  enum?: unknown[];
  format?: string;
  minimum?: number;
  maximum?: number;
}

/** The `--help` text of `cli`: usage, about, flags, then each environment variable. */
function usageText<F extends Record<string, Flag>>(cli: CommandLine<F>): string {
  const lines = [`usage: ${cli.usage}`, "", cli.about, "", "flags:"];
  const flags: [string, string][] = [
    ...Object.entries(cli.flags).map(([name, f]): [string, string] => [
      `  ${f.short === undefined ? "" : `-${f.short}, `}--${name}${f.type === "string" ? " <value>" : ""}`,
      `${f.help}${f.default === undefined || f.default === false ? "" : ` (default: ${String(f.default)})`}`,
    ]),
    ["  -h, --help", "print this help and exit"],
  ];
  lines.push(...columns(flags));
  if (cli.env !== undefined) {
    // io "input": what the environment may hold (strings), with the schema's defaults.
    const schema = z.toJSONSchema(cli.env, { io: "input", unrepresentable: "any" }) as {
      properties?: Record<string, JsonSchemaProperty>;
      required?: string[];
    };
    const required = new Set(schema.required ?? []);
    lines.push("", "environment:");
    lines.push(
      ...columns(
        Object.entries(schema.properties ?? {}).map(([name, p]): [string, string] => [
          `  ${name}`,
          [
            required.has(name)
              ? "required"
              : p.default === undefined
                ? "optional"
                : `default: ${JSON.stringify(p.default)}`,
            describe(p),
          ]
            .filter((s) => s !== "")
            .join("; "),
        ]),
      ),
    );
  }
  return `${lines.join("\n")}\n`;
}

function describe(p: JsonSchemaProperty): string {
  if (p.enum !== undefined) return `one of ${p.enum.join(", ")}`;
  // zod's int() bounds a number by the safe integers: no bound worth printing.
  const bound = (n: number | undefined) =>
    n === undefined || Math.abs(n) >= Number.MAX_SAFE_INTEGER ? "" : String(n);
  const [min, max] = [bound(p.minimum), bound(p.maximum)];
  const range = min !== "" || max !== "" ? ` ${min}..${max}` : "";
  return `${p.type ?? ""}${p.format === undefined ? "" : ` (${p.format})`}${range}`;
}

function columns(rows: readonly [string, string][]): string[] {
  const width = Math.max(0, ...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `${left.padEnd(width)}${right}`);
}

/**
 * Parses `argv` (`process.argv.slice(2)` by default) against `cli`. `--help` anywhere prints the
 * usage to stdout and exits 0; a parse error prints `error: …` and the usage to stderr and exits 2.
 * Values are strings or booleans as `parseArgs` gives them; each entry point checks its own.
 */
export function parseCommandLine<F extends Record<string, Flag>>(
  cli: CommandLine<F>,
  argv: readonly string[] = process.argv.slice(2),
): { values: Values<F>; positionals: string[] } {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usageText(cli));
    process.exit(0);
  }
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: cli.positionals ?? false,
      strict: true,
      options: Object.fromEntries(
        Object.entries(cli.flags).map(([name, f]) => [
          name,
          {
            type: f.type,
            ...(f.default === undefined ? {} : { default: f.default }),
            ...(f.short === undefined ? {} : { short: f.short }),
          },
        ]),
      ),
    });
    return { values: values as Values<F>, positionals };
  } catch (e) {
    return usageError(cli, e instanceof Error ? e.message : String(e));
  }
}

/** Prints `error: <message>` and the usage to stderr and exits 2: a bad command line. */
export function usageError<F extends Record<string, Flag>>(cli: CommandLine<F>, message: string): never {
  process.stderr.write(`error: ${message}\n${usageText(cli)}`);
  process.exit(2);
}
