import type { Logger } from "./logger.ts";

/**
 * Runs `stop` once on SIGINT or SIGTERM, then exits 0 (1 if `stop` throws). A second signal exits at
 * once (130), so a stuck shutdown never needs kill -9. Returns a function that starts the same
 * shutdown from the program itself and then exits with `code` (a failure it cannot go on after); it
 * does nothing once a shutdown is under way.
 */
export function onShutdown(log: Logger, stop: () => Promise<void>): (code: number) => void {
  let stopping = false;
  const begin = (code: number, signal: string | null): void => {
    stopping = true;
    log.info("shutting down", { signal });
    stop().then(
      () => process.exit(code),
      (e: unknown) => {
        log.error("shutdown failed", { error: e });
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: string): void => {
    if (stopping) process.exit(130);
    begin(0, signal);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  return (code) => {
    if (!stopping) begin(code, null);
  };
}
