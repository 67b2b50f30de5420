/**
 * The generator's own Prometheus series, fed as things happen: time to first token, decode rate
 * and publish → active latency. The series read from state at each scrape (lifecycle counters,
 * cache, engine, queue depth) are registered by `routes/ops.ts`; request latency by the shared
 * `httpMetrics` middleware (`app.ts`).
 */
import { Histogram, type Registry } from "@loracast/shared/platform";
import type { InferenceObserver } from "./inference/inference-service.ts";

/**
 * One generator's metrics on its own registry. An `InferenceObserver` for the inference service;
 * `activated` is the adapter manager's `onActivated`.
 */
export class GeneratorMetrics implements InferenceObserver {
  private readonly ttft: Histogram;
  private readonly decodeRate: Histogram;
  private readonly publishToActive: Histogram;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.ttft = new Histogram({
      name: "loracast_generator_time_to_first_token_seconds",
      help: "Seconds from a completion request's choices being queued to the engine to its first generated token.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.decodeRate = new Histogram({
      name: "loracast_generator_decode_tokens_per_second",
      help: "Per-request decode rate: tokens generated after the first (all choices) over the seconds from the first token to the last.",
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    });
    this.publishToActive = new Histogram({
      name: "loracast_generator_publish_to_active_seconds",
      help: "Seconds from a version's publish (its manifest's createdAt, the trainer's clock) to its activation on this generator, one observation per activation.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    });
  }

  /** See `InferenceObserver.firstToken`. */
  firstToken(seconds: number): void {
    this.ttft.observe(seconds);
  }

  /** See `InferenceObserver.finished`; a request of one token (or of no decode time) has no rate. */
  finished(tokens: number, decodeSeconds: number): void {
    if (tokens > 1 && decodeSeconds > 0) this.decodeRate.observe((tokens - 1) / decodeSeconds);
  }

  /**
   * A version activated `seconds` after its publish. Clock skew between trainer and generator can
   * make it negative; such an observation counts as 0 rather than being dropped.
   */
  activated(seconds: number): void {
    this.publishToActive.observe(Math.max(0, seconds));
  }
}
