/**
 * The GPU probes' command-line checks. Each probe parses its flags with `parseCommandLine`
 * (`--help`, an unknown flag: exit 2); these check the values it reads from them. A bad value is
 * refused, never clamped or defaulted: a probe run on the GPU host with `--steps=-3` must not time
 * something else and report it as asked. The refusal is `usageError`'s: exit 2, one line naming the
 * flag and what it takes ("error: --steps takes an integer from 1 to 1024, not -3"), then the usage.
 */
import { usageError } from "@loracast/shared/platform";
import { err, type Failure, ok, type Result } from "@loracast/shared/result";

/** Writes `line` and a newline to stdout: a probe's report, one line at a time. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * The `--addon=FILE` flag of the probes that load the ort-native addon: where prepare.sh --cuda
 * builds it in the carry.
 */
export const ADDON_FLAG = {
  type: "string",
  default: ".carry/cuda/ort-native.node",
  help: "the ort-native addon's file",
} as const;

// Decimal digits only: `Number` alone would take "", " 8", "0x10" and "1e2".
const INTEGER = /^[+-]?\d+$/;

/**
 * `raw` (the value of `--flag`) as an integer from `min` to `max` inclusive; otherwise the failure
 * whose message names the flag and the range: "--steps takes an integer from 1 to 1024, not -3".
 */
export function parseIntFlag(flag: string, raw: string, min: number, max: number): Result<number, Failure> {
  const n = INTEGER.test(raw) ? Number(raw) : Number.NaN;
  return Number.isSafeInteger(n) && n >= min && n <= max
    ? ok(n)
    : err({ message: `--${flag} takes an integer from ${min} to ${max}, not ${raw}` });
}

/**
 * `raw` as a comma-separated list of 1 to `most` integers, each from `min` to `max`, duplicates
 * dropped (first kept, in order); otherwise the failure naming the flag, the bad item and the range
 * ("--ms takes integers from 1 to 4096, not 0"), or the count ("--ms takes at most 8 values, not 9").
 */
export function parseIntListFlag(
  flag: string,
  raw: string,
  min: number,
  max: number,
  most: number,
): Result<number[], Failure> {
  const items = raw.split(",");
  const values = new Set<number>();
  for (const item of items) {
    const n = parseIntFlag(flag, item, min, max);
    if (!n.ok) return err({ message: `--${flag} takes integers from ${min} to ${max}, not ${item}` });
    values.add(n.value);
  }
  return items.length > most
    ? err({ message: `--${flag} takes at most ${most} values, not ${items.length}` })
    : ok([...values]);
}

/** `raw` if it is one of `choices`; otherwise the failure naming them: "--ep is cuda or cpu, not webgpu". */
export function parseChoiceFlag<T extends string>(
  flag: string,
  raw: string,
  choices: readonly T[],
): Result<T, Failure> {
  if ((choices as readonly string[]).includes(raw)) return ok(raw as T);
  const named = choices.length > 1 ? `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}` : choices[0];
  return err({ message: `--${flag} is ${named}, not ${raw}` });
}

/** A probe's command line as `parseCommandLine` took it: what `usageError` prints after the refusal. */
type CommandLine = Parameters<typeof usageError>[0];

/** The names of `V`'s flags that hold a string (a string flag with a default). */
type StringFlag<V> = { [K in keyof V]: V[K] extends string ? K : never }[keyof V] & string;

/**
 * Checkers of `values` (what `parseCommandLine(cli)` returned) that return a flag's value checked as
 * the `parse*Flag` functions above check it, or exit 2 through `usageError(cli, …)` with their
 * one-line message and the usage.
 */
export function probeFlags<V extends Record<string, unknown>>(
  cli: CommandLine,
  values: V,
): {
  /** `--flag` as an integer from `min` to `max` (`parseIntFlag`). */
  int(flag: StringFlag<V>, min: number, max: number): number;
  /** `--flag` as 1 to `most` distinct integers from `min` to `max` (`parseIntListFlag`). */
  ints(flag: StringFlag<V>, min: number, max: number, most: number): number[];
  /** `--flag` as one of `choices` (`parseChoiceFlag`). */
  oneOf<T extends string>(flag: StringFlag<V>, choices: readonly T[]): T;
} {
  const orExit = <T>(r: Result<T, Failure>): T => (r.ok ? r.value : usageError(cli, r.error.message));
  const raw = (flag: StringFlag<V>) => values[flag] as string;
  return {
    int: (flag, min, max) => orExit(parseIntFlag(flag, raw(flag), min, max)),
    ints: (flag, min, max, most) => orExit(parseIntListFlag(flag, raw(flag), min, max, most)),
    oneOf: (flag, choices) => orExit(parseChoiceFlag(flag, raw(flag), choices)),
  };
}
