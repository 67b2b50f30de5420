/**
 * A fleet of verify-only generators (no engine: each pulls, verifies and activates adapters on a
 * Llama-2-7B-shaped base config, and answers completions 503) on ports of their own, against one
 * trainer that notifies them all (`WEBHOOK_SUBSCRIBERS`) and the embedded S3 server. All real
 * processes, from `./stack.ts`. The fleet benchmark (`npm run bench:fleet`) and the convergence
 * test (test/journeys/fleet-convergence.test.ts) start it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Service } from "@loracast/dev-support/supervisor";
import { eventually } from "@loracast/dev-support/supervisor";
import { LLAMA_7B_DIMS, writeBaseConfig } from "./adapters.ts";
import { type Stack, startStack } from "./stack.ts";

/** How a fleet is started. */
export interface FleetOptions {
  /** Generators in the fleet. */
  generators: number;
  /** Each generator's `RECONCILE_INTERVAL_MS`. @default 3000 (the generator's own default) */
  reconcileIntervalMs?: number;
  /** Generators started at once (each start is a Node process loading its code). @default 4 */
  startConcurrency?: number;
}

/** A started fleet: the stack (its `generators` in index order) and the base its adapters fit. */
export interface Fleet {
  stack: Stack;
  /** The base config.json (Llama-2-7B dimensions) every generator verifies against. */
  base: string;
  /** SIGKILLs generator `i`; it stays in `stack.generators`, dead, until `restart(i)`. */
  kill(i: number): Promise<void>;
  /** Starts generator `i` again with its name, environment and port, in its place in `stack.generators`. */
  restart(i: number): Promise<Service>;
}

/** Starts a fleet (see the module comment); the trainer starts last, subscribed to every generator. */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  // On a busy 2-core machine one start can wait minutes for the CPU behind the others.
  const stack = await startStack({ generators: 0, readyTimeoutMs: 180_000 });
  try {
    const base = writeBaseConfig(join(stack.dir, "base"), LLAMA_7B_DIMS);
    const env = {
      GENERATOR_BASE_CONFIG: base,
      CACHE_MAX_VERSIONS: "2",
      RECONCILE_INTERVAL_MS: String(options.reconcileIntervalMs ?? 3000),
      // The benchmark waits on the `adapter activated` lines.
      LOG_LEVEL: "info",
    };
    const start = (i: number, port = 0) => stack.startGenerator(`g${i}`, env, port);
    const slots = Array.from({ length: options.generators }, (_, i) => i);
    const concurrency = options.startConcurrency ?? 4;
    for (let i = 0; i < slots.length; i += concurrency) {
      const started = await Promise.all(slots.slice(i, i + concurrency).map((j) => start(j)));
      stack.generators.push(...started);
    }
    // startStack's trainer was started before any generator: restart it, subscribed to all of them.
    await stack.trainer.stop();
    await stack.startTrainer({ LOG_LEVEL: "info" });
    const at = (i: number): Service => {
      const g = stack.generators[i];
      if (g === undefined) throw new Error(`no generator ${i} in a fleet of ${stack.generators.length}`);
      return g;
    };
    return {
      stack,
      base,
      kill: (i) => at(i).kill(),
      restart: async (i) => {
        const g = await start(i, Number(new URL(at(i).url).port));
        stack.generators[i] = g;
        return g;
      },
    };
  } catch (e) {
    await stack.stop();
    throw e;
  }
}

/**
 * Waits until every generator of `fleet` serves `run` at `version` with weights `sha256` (its
 * `/v1/adapters` `active` entry), polling each every 100 ms for at most `timeoutMs`; throws naming
 * the generators that had not converged. Resolves with the time it took, in ms.
 */
export async function waitConverged(
  stack: Stack,
  run: string,
  version: number,
  sha256: string,
  timeoutMs: number,
): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    stack.generators.map((g) =>
      eventually(
        `${g.name} serves ${run}@${version} (${sha256.slice(0, 12)}…)`,
        async () => {
          const active = (await stack.adapters(g)).active[run];
          return active?.version === version && active.sha256 === sha256 ? true : undefined;
        },
        timeoutMs,
        100,
      ),
    ),
  );
  return performance.now() - t0;
}

/** CPU seconds (user + system) process `pid` has used, from `/proc/<pid>/stat` (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of proc(5); fields[0] here is field 3 (state).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
