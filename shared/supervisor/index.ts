/**
 * Starts loracast's services as child processes: the local stack (`npm start`), the integration
 * tests and the benchmarks all run the real processes through this. Each service logs JSON lines;
 * its `ready` line carries its URL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** The repository root, where `services/` lives. */
export const ROOT = join(import.meta.dirname, "..", "..");

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface Service {
  readonly name: string;
  readonly url: string;
  readonly proc: ChildProcess;
  readonly logs: LogLine[];
  /** SIGTERM, then wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL, then wait for exit. */
  kill(): Promise<void>;
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

const ENTRIES: Record<string, { script: string; nodeArgs: string[]; env?: Record<string, string> }> = {
  "s3-local": { script: "services/s3-local/src/main.ts", nodeArgs: [] },
  trainer: { script: "services/trainer/src/main.ts", nodeArgs: [] },
  // --expose-gc lets the generator hand evicted adapter memory back promptly (see AdapterManager).
  generator: {
    script: "services/generator/src/main.ts",
    nodeArgs: ["--expose-gc"],
    // glibc raises its mmap threshold to the size of each large block freed, up to 32 MiB, after which
    // adapter-sized buffers come from the heap and stay resident once freed. A fixed threshold keeps
    // them mmapped, so evicted adapters go back to the OS.
    env: { MALLOC_MMAP_THRESHOLD_: "131072" },
  },
};

export async function startService(
  kind: keyof typeof ENTRIES,
  env: Record<string, string>,
  options: { name?: string; readyTimeoutMs?: number; echo?: (line: string) => void } = {},
): Promise<Service> {
  const entry = ENTRIES[kind];
  if (entry === undefined) throw new Error(`unknown service ${kind}`);
  const name = options.name ?? kind;
  // Hosts without node_modules (the GPU bench host) run each service from an esbuild bundle
  // named after it, made by test/bench/gpu/prepare.sh.
  const bundles = process.env.LORACAST_SERVICE_BUNDLES;
  const script = bundles === undefined ? ["--import", "tsx", entry.script] : [join(bundles, `${kind}.mjs`)];
  const proc = spawn(process.execPath, [...entry.nodeArgs, ...script], {
    cwd: bundles === undefined ? ROOT : process.cwd(),
    env: { PATH: process.env.PATH ?? "", ...entry.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  const stderr: string[] = [];
  const onLine = (line: string): void => {
    options.echo?.(line);
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      return;
    }
    logs.push(parsed);
    for (const w of [...waiters]) {
      if (w.match(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  };
  createInterface({ input: proc.stdout }).on("line", onLine);
  createInterface({ input: proc.stderr }).on("line", (l) => {
    stderr.push(l);
    onLine(l);
  });
  const exited = once(proc, "exit");

  const waitForLog = (match: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> => {
    const past = logs.find(match);
    if (past !== undefined) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(
          new Error(
            `${name}: no matching log line within ${timeoutMs} ms; stderr:\n${stderr.slice(-20).join("\n")}`,
          ),
        );
      }, timeoutMs);
      const w = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(w);
    });
  };

  const ready = await Promise.race([
    waitForLog((l) => l.msg === "ready", options.readyTimeoutMs ?? 30_000),
    exited.then(() => {
      throw new Error(`${name} exited before it was ready; stderr:\n${stderr.slice(-30).join("\n")}`);
    }),
  ]);
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    await exited;
  };
  return {
    name,
    url: String(ready.url),
    proc,
    logs,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    waitForLog,
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
