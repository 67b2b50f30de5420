/**
 * Drives `npm start` the way a user does, for the journeys suite: the README's command in its own
 * process group (so a signal reaches every process at once, as Ctrl-C in a terminal does), on a
 * chosen data dir and free ports, with the terminal's output captured line by line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { join } from "node:path";
import { ROOT } from "@loracast/dev-support/fixtures";
import { captureLines } from "./output-lines.ts";

/** How a process ended: its exit code, or the signal that ended it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One `npm start` process and everything it printed. */
export interface LocalStackRun {
  readonly proc: ChildProcess;
  /** Process group id: every service the stack started belongs to it. */
  readonly pgid: number;
  /** stdout and stderr, one entry per line, in arrival order. */
  readonly lines: string[];
  /** All output so far as one string. */
  text(): string;
  /** Resolves with the first line (past or future) that matches; rejects on timeout or exit. */
  waitForLine(match: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when `npm start` exits. */
  readonly exited: Promise<Exit>;
  /** Sends `signal` to the whole process group, like Ctrl-C in a terminal, and waits for the exit. */
  interrupt(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  /** SIGKILL to the whole group (test clean-up). */
  killGroup(): void;
}

/**
 * Starts `npm start` with `env` added to this process's environment (LORACAST_* settings). The
 * child gets its own process group.
 */
export function startLocalStack(env: Record<string, string>): LocalStackRun {
  const proc = spawn("npm", ["start"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const pgid = proc.pid as number;
  const { lines, waitForLine: waitWithin } = captureLines(proc, "npm start");
  const exited = new Promise<Exit>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => {
    done = true;
  });

  const waitForLine = (match: RegExp, timeoutMs = 120_000): Promise<string> => waitWithin(match, timeoutMs);

  const killGroup = (): void => {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  };

  return {
    proc,
    pgid,
    lines,
    text: () => lines.join("\n"),
    waitForLine,
    exited,
    interrupt: async (signal = "SIGINT", timeoutMs = 30_000) => {
      if (!done) process.kill(-pgid, signal);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`npm start did not exit within ${timeoutMs} ms of ${signal}`)),
          timeoutMs,
        );
      });
      // A pending timer would hold the test process open for the rest of timeoutMs.
      return Promise.race([exited, late]).finally(() => clearTimeout(timer));
    },
    killGroup,
  };
}

/** The pids of every live process in process group `pgid` (read from /proc). */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(join("/proc", entry, "stat"), "utf8");
      // Fields after the command name, which sits in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const state = fields[0];
      if (Number(fields[2]) === pgid && state !== "Z") out.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.connect(port, "127.0.0.1");
  });
}

/** Whether a TCP server can listen on `host`:`port` right now. */
export function canListen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A base port whose `count` consecutive ports are all free right now, drawn from 20000–59999 with a
 * seeded walk so concurrent test files rarely pick the same range.
 */
export async function freePortRange(count: number, seed = process.pid): Promise<number> {
  let x = seed >>> 0 || 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const base = 20_000 + (x % 40_000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await canListen(p);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/**
 * Waits until no process of group `pgid` is left, and returns the pids still there after
 * `timeoutMs` (empty when the group ended). npm exits on a signal before the stack it started has
 * finished stopping, so a journey waits for the group, not for npm.
 */
export async function waitGroupGone(pgid: number, timeoutMs = 20_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = groupMembers(pgid);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}
