/**
 * A child process's stdout and stderr as lines, in arrival order, with a wait for the first line
 * that matches. Shared by the journeys that spawn `npm start` or a service directly.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** The captured output of one process. */
export interface OutputLines {
  /** stdout and stderr, one entry per line, in arrival order. */
  readonly lines: string[];
  /**
   * Resolves with the first line (past or future) that matches `match`; rejects after `timeoutMs`,
   * or once the process has exited without printing one. The error shows the last 40 lines.
   */
  waitForLine(match: RegExp, timeoutMs: number): Promise<string>;
}

/** Starts capturing `proc`'s output; `name` prefixes error messages. */
export function captureLines(proc: ChildProcess, name: string): OutputLines {
  const lines: string[] = [];
  const waiters: { match: RegExp; resolve: (l: string) => void }[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.match.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", onLine);
  createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on("line", onLine);
  const exited = once(proc, "exit");

  const waitForLine = (match: RegExp, timeoutMs: number): Promise<string> => {
    const past = lines.find((l) => match.test(l));
    if (past !== undefined) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        const i = waiters.indexOf(w);
        if (i >= 0) waiters.splice(i, 1);
        reject(new Error(`${name}: ${why} waiting for ${match}; output:\n${lines.slice(-40).join("\n")}`));
      };
      const timer = setTimeout(() => fail(`no line within ${timeoutMs} ms`), timeoutMs);
      const w = {
        match,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(w);
      void exited.then(() => {
        // Give readline a turn to deliver the last lines before giving up.
        setTimeout(() => {
          if (waiters.includes(w)) {
            clearTimeout(timer);
            fail("exited");
          }
        }, 50);
      });
    });
  };
  return { lines, waitForLine };
}
