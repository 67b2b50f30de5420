/**
 * `GET /readyz`'s checks: the object store answers, the outbox is loaded, the model (if one is
 * configured) is loaded. The store check costs one listing, so its result is reused for `cacheMs`
 * and concurrent checks share one request: probes from every kubelet and load balancer cost the
 * store at most one request per interval.
 */
import type { Clock } from "@loracast/shared/platform";
import type { TrainerReadiness } from "@loracast/shared/trainer-api";

/** What the trainer's readiness is made of. */
export interface ReadinessDeps {
  /** One cheap store request; rejects when the store cannot be reached or answers with an error. */
  probeStore: () => Promise<unknown>;
  /** Whether the webhook outbox has started (`Outbox.started`). */
  outboxStarted: () => boolean;
  /**
   * `loaded` when TRAINER_MODEL_DIR's model is loaded (main.ts loads it before serving, or exits),
   * `not_configured` without one.
   */
  model: "loaded" | "not_configured";
  clock: Clock;
  /** How long a store check's result is reused, in ms. @default 1000 */
  cacheMs?: number;
  /** How long the store may take to answer before it counts as unreachable, in ms. @default 2000 */
  timeoutMs?: number;
}

/** Ready with its checks, or not ready with one reason per failed check. */
export type ReadinessResult = { ready: true; body: TrainerReadiness } | { ready: false; reasons: string[] };

/** Runs the checks; see the module comment. */
export class Readiness {
  private last: { at: number; error: string | null } | null = null;
  private inFlight: Promise<string | null> | null = null;

  constructor(private readonly d: ReadinessDeps) {}

  async check(): Promise<ReadinessResult> {
    const storeError = await this.storeError();
    const reasons: string[] = [];
    if (storeError !== null) reasons.push(`store: ${storeError}`);
    if (!this.d.outboxStarted()) reasons.push("outbox: not loaded");
    if (reasons.length > 0) return { ready: false, reasons };
    return {
      ready: true,
      body: { status: "ready", checks: { store: "ok", outbox: "ok", model: this.d.model } },
    };
  }

  private storeError(): Promise<string | null> {
    const now = this.d.clock.now();
    if (this.last !== null && now - this.last.at < (this.d.cacheMs ?? 1000))
      return Promise.resolve(this.last.error);
    this.inFlight ??= this.probe().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async probe(): Promise<string | null> {
    const timeoutMs = this.d.timeoutMs ?? 2000;
    let timer: NodeJS.Timeout | undefined;
    const error = await Promise.race([
      this.d.probeStore().then(
        () => null,
        (e: unknown) => `unreachable (${e instanceof Error ? e.message : String(e)})`,
      ),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    this.last = { at: this.d.clock.now(), error };
    return error;
  }
}
