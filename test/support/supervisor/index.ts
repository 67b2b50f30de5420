/**
 * Starts loracast's services as child processes: the local stack (`npm start`), the integration
 * tests and the benchmarks all run the real processes through this. Each service logs JSON lines;
 * its `ready` line carries its URL. Development support only: the services it starts never import
 * it (it names their entry points by path and reads `LORACAST_SERVICE_BUNDLES` from the
 * environment).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";
import { ROOT } from "../fixtures/index.ts";

/**
 * What the supervisor reads from its own environment: `LORACAST_SERVICE_BUNDLES`, a directory of
 * esbuild bundles (one per service, `<kind>.mjs`) to run instead of the TypeScript sources, on hosts
 * without node_modules (test/bench/gpu/prepare.sh makes them). Benchmarks list it in `--help`.
 */
export const supervisorEnvSchema = z.object({ LORACAST_SERVICE_BUNDLES: z.string().optional() });

/** One JSON log line of a service (the platform logger's shape: `level`, `msg`, then fields). */
export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** How a child process ended: its exit code, or the signal that ended it. */
export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process as soon as it is spawned, before it is ready. */
export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ServiceExit>;
}

/** A service that logged its `ready` line, with its URL and every log line it has written. */
export interface Service extends Child {
  readonly url: string;
  readonly logs: LogLine[];
  /** SIGTERM, then wait for exit; SIGKILL if it has not exited after `STOP_GRACE_MS`. */
  stop(): Promise<void>;
  /** SIGKILL, then wait for exit. */
  kill(): Promise<void>;
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

/** Each service's entry point (relative to the repository root), node flags and extra environment. */
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

/** How long `stop()` waits after SIGTERM before it sends SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** Why a service never became ready: it exited, took too long, or its start was aborted. */
export class ServiceStartError extends Error {
  override readonly name = "ServiceStartError";
  constructor(
    /** The service's name (`generator-1`). */
    readonly service: string,
    readonly reason: "exited" | "timeout" | "aborted",
    /** How the process ended (it is always ended by the time this is thrown). */
    readonly exit: ServiceExit,
    /** The last lines it wrote to stderr. */
    readonly stderr: readonly string[],
    /** Its last `error` log line's message and `error` field, if it logged one. */
    readonly lastError: string | null,
  ) {
    const why =
      reason === "exited"
        ? `exited before it was ready (${exit.signal ?? `code ${exit.code}`})`
        : reason === "timeout"
          ? "was not ready in time"
          : "was stopped before it was ready";
    super(`${service} ${why}${stderr.length > 0 ? `; stderr:\n${stderr.join("\n")}` : ""}`);
  }
}

/** Options of `startService`. */
export interface StartOptions {
  /** The name in errors and `Service.name`; defaults to the kind. */
  name?: string;
  /** How long to wait for the `ready` line. @default 30000 */
  readyTimeoutMs?: number;
  /** Called with every line the service writes (stdout and stderr). */
  echo?: (line: string) => void;
  /** Aborting it before the service is ready stops the process and rejects with reason `aborted`. */
  signal?: AbortSignal;
  /** Called once the process is spawned, before it is ready (to track it from its first moment). */
  onSpawn?: (child: Child) => void;
}

/**
 * Spawns a service and resolves once it logs its `ready` line. A service that never gets ready is
 * stopped before this rejects with a `ServiceStartError`, so a failed start leaves no process.
 */
export async function startService(
  kind: keyof typeof ENTRIES,
  env: Record<string, string>,
  options: StartOptions = {},
): Promise<Service> {
  const entry = ENTRIES[kind];
  if (entry === undefined) throw new Error(`unknown service ${kind}`);
  const name = options.name ?? kind;
  // Hosts without node_modules (the GPU bench host) run each service from an esbuild bundle
  // named after it, made by test/bench/gpu/prepare.sh.
  const bundles = supervisorEnvSchema.parse(process.env).LORACAST_SERVICE_BUNDLES;
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
  // "close" comes after "exit" once stdout and stderr are drained, so the last lines are in `logs`.
  const exited = new Promise<ServiceExit>((resolve) =>
    proc.once("close", (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal })),
  );

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

  const child: Child = { name, proc, exited };
  options.onSpawn?.(child);
  const stop = () => terminate(child);

  // The first of: the ready line, the process's exit, the timeout, an abort. Whichever wins, the
  // others are disarmed so nothing keeps the event loop alive afterwards.
  const outcome = await new Promise<LogLine | ServiceStartError["reason"]>((resolve) => {
    const readyWaiter = { match: (l: LogLine) => l.msg === "ready", resolve: (l: LogLine) => settle(l) };
    const timer = setTimeout(() => settle("timeout"), options.readyTimeoutMs ?? 30_000);
    const onAbort = (): void => settle("aborted");
    const settle = (result: LogLine | ServiceStartError["reason"]): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      const i = waiters.indexOf(readyWaiter);
      if (i >= 0) waiters.splice(i, 1);
      resolve(result);
    };
    const past = logs.find(readyWaiter.match);
    if (past !== undefined) return settle(past);
    if (options.signal?.aborted) return settle("aborted");
    waiters.push(readyWaiter);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    void exited.then(() => settle("exited"));
  });
  if (typeof outcome === "string") {
    await stop();
    const exit = await exited;
    const lastError = logs.findLast((l) => l.level === "error");
    throw new ServiceStartError(
      name,
      outcome,
      exit,
      stderr.slice(-30),
      lastError === undefined
        ? null
        : `${lastError.msg}${lastError.error === undefined ? "" : `: ${describe(lastError.error)}`}`,
    );
  }
  return {
    name,
    url: String(outcome.url),
    proc,
    exited,
    logs,
    stop,
    kill: () => sendAndWait(child, "SIGKILL"),
    waitForLog,
  };
}

async function sendAndWait(child: Child, signal: NodeJS.Signals): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill(signal);
  await child.exited;
}

/** SIGTERM, then SIGKILL if the process is still there after `STOP_GRACE_MS`; resolves once it has exited. */
async function terminate(child: Child): Promise<void> {
  const timer = setTimeout(() => void sendAndWait(child, "SIGKILL"), STOP_GRACE_MS);
  await sendAndWait(child, "SIGTERM");
  clearTimeout(timer);
}

/**
 * Services started together and stopped together (the local stack). Every child is tracked from the
 * moment it is spawned, so a stop during start-up leaves no process behind, and `stop()` ends them in
 * reverse start order. A child that exits on its own after it was ready, while the group is not
 * stopping, is reported to `onUnexpectedExit`; one that fails to start is the caller's
 * `ServiceStartError` instead.
 */
export class ServiceGroup {
  private readonly children: Child[] = [];
  private readonly aborter = new AbortController();
  private stopped: Promise<void> | null = null;

  constructor(private readonly onUnexpectedExit: (child: Child, exit: ServiceExit) => void) {}

  /** `startService` within the group. Rejects with reason `aborted` once the group is stopping. */
  start(
    kind: keyof typeof ENTRIES,
    env: Record<string, string>,
    options: Omit<StartOptions, "signal" | "onSpawn"> = {},
  ): Promise<Service> {
    if (this.stopped !== null) {
      const none = { code: null, signal: null };
      return Promise.reject(new ServiceStartError(options.name ?? kind, "aborted", none, [], null));
    }
    const started: Promise<Service> = startService(kind, env, {
      ...options,
      signal: this.aborter.signal,
      onSpawn: (child) => {
        this.children.push(child);
        void child.exited.then(async (exit) => {
          const wasReady = await started.then(
            () => true,
            () => false,
          );
          if (wasReady && this.stopped === null) this.onUnexpectedExit(child, exit);
        });
      },
    });
    return started;
  }

  /** Aborts the starts under way and stops every child, newest first. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.aborter.abort();
      for (const child of [...this.children].reverse()) await terminate(child);
    })();
    return this.stopped;
  }
}

/** A log line's `error` field as text (the logger writes errors as `{name, message}`). */
function describe(error: unknown): string {
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return typeof error === "string" ? error : JSON.stringify(error);
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
