/** A process's memory as Linux reports it (/proc), for tests that bound what a request may cost. */
import { readFileSync, writeFileSync } from "node:fs";

/** The process's resident (VmRSS) and peak resident (VmHWM) memory, in bytes. */
export function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** Resets the process's peak (VmHWM) to its current RSS. */
export const resetPeak = (pid: number): void => writeFileSync(`/proc/${pid}/clear_refs`, "5");
