import type { Logger } from "./logger.ts";

/**
 * Runs `stop` once on SIGINT or SIGTERM, then exits. A second signal exits at once, so a stuck
 * shutdown never needs kill -9.
 */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string): void => {
    if (stopping) process.exit(130);
    stopping = true;
    log.info("shutting down", { signal });
    stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error("shutdown failed", { error: e });
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => handler("SIGINT"));
  process.on("SIGTERM", () => handler("SIGTERM"));
}
