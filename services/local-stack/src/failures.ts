/**
 * What the local stack tells the user when it cannot go on: one line, naming what failed and what
 * to do, instead of a stack trace.
 */
import type { StackPorts } from "@loracast/dev-support/stack";
import { type ServiceExit, ServiceStartError } from "@loracast/dev-support/supervisor";
import { DemoError } from "./demo-run.ts";

/** "code 1" or "SIGKILL". */
export function describeExit(exit: ServiceExit): string {
  return exit.signal ?? `code ${exit.code}`;
}

function portOf(service: string, ports: StackPorts): number | undefined {
  if (service === "s3-local") return ports.s3;
  if (service === "trainer") return ports.trainer;
  const generator = /^generator-(\d+)$/.exec(service);
  return generator === null ? undefined : ports.generators[Number(generator[1])];
}

/** The thrown error's line in a crash trace (`Error: listen EADDRINUSE …`), without the frames. */
function errorLine(stderr: readonly string[]): string | undefined {
  return stderr.find((l) => /^[A-Za-z]*Error\b/.test(l));
}

/** The one line the stack prints for a failure that stops it. */
export function describeFailure(e: unknown, ports: StackPorts): string {
  if (e instanceof ServiceStartError) {
    const port = portOf(e.service, ports);
    const said = [e.lastError ?? "", ...e.stderr];
    if (port !== undefined && said.some((l) => l.includes("EADDRINUSE"))) {
      const last = ports.generators.at(-1) ?? ports.trainer;
      return (
        `port ${port} (${e.service}) is already in use. The stack uses ports ${ports.s3}–${last}; ` +
        `choose others with LORACAST_BASE_PORT, e.g. LORACAST_BASE_PORT=${ports.s3 + 100} npm start`
      );
    }
    if (e.reason === "timeout") {
      return `${e.service} did not get ready in time${e.lastError === null ? "" : ` (${e.lastError})`}`;
    }
    return `${e.service} did not start: ${e.lastError ?? errorLine(e.stderr) ?? describeExit(e.exit)}`;
  }
  if (e instanceof DemoError) return `demo: ${e.message}`;
  return `local stack: ${e instanceof Error ? e.message : String(e)}`;
}
