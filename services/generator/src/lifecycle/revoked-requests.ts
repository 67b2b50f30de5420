/** Requests (and `load_lora_adapter` calls) that named a revoked version: refused or served, counted and logged. */
import type { RollbackRecord } from "@loracast/shared/manifest";
import { revocationMessage } from "@loracast/shared/manifest";
import type { Logger } from "@loracast/shared/platform";
import { err, type Result } from "@loracast/shared/result";
import type { EnsureError } from "./types.ts";

/** Counts by run and outcome: `loracast_revoked_requests_total{run, outcome}`. */
export type RevokedCounts = Map<string, { refused: number; served: number }>;

/**
 * Counts and logs requests naming a version a rollback revoked: `refuse` answers them with the
 * `revoked` failure, `served` records one served anyway (`GENERATOR_SERVE_REVOKED`).
 */
export class RevokedRequests {
  constructor(
    private readonly counts: RevokedCounts,
    private readonly log: Logger,
  ) {}

  /** The 410 answer for `version`, which `rollback` revoked; counted and logged. */
  refuse(version: number, rollback: RollbackRecord): Result<never, EnsureError> {
    const message = revocationMessage(version, rollback);
    this.count(rollback.run, "refused");
    this.log.warn("revoked version refused", { run: rollback.run, version, reason: message });
    return err({ kind: "revoked", message, rollback });
  }

  /** Counts and logs a revoked version served anyway, as the operator allows (GENERATOR_SERVE_REVOKED). */
  served(version: number, rollback: RollbackRecord): void {
    this.count(rollback.run, "served");
    this.log.warn("serving a revoked version (GENERATOR_SERVE_REVOKED)", {
      run: rollback.run,
      version,
      reason: revocationMessage(version, rollback),
    });
  }

  private count(run: string, outcome: "refused" | "served"): void {
    const counts = this.counts.get(run) ?? { refused: 0, served: 0 };
    counts[outcome]++;
    this.counts.set(run, counts);
  }
}
