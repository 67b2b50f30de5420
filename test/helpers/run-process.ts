/**
 * Runs a command to its end and collects what it wrote: the one helper the tests use for a child
 * process whose whole output they read after it exits (`output-lines.ts` is for processes that keep
 * running and are waited on line by line).
 */
import { spawn } from "node:child_process";

/** A finished process: its exit code (null when a signal ended it) and its output as text. */
export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, in the order the chunks arrived. */
  output: string;
}

/** Where and how `runProcess` runs the command. */
export interface RunProcessOptions {
  cwd?: string;
  /** The child's whole environment (nothing is inherited beyond it). */
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed; stdin is ignored without it. */
  input?: string;
}

/**
 * Spawns `bin` with `args` (no shell) and resolves once it has exited and its pipes are drained
 * (`close`), whatever its exit code; rejects only when it cannot be started (`error`: a missing
 * binary, ENOENT).
 */
export function runProcess(
  bin: string,
  args: string[],
  options: RunProcessOptions = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let output = "";
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
      output += s;
    });
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
      output += s;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, output }));
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
