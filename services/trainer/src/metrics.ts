/**
 * The trainer's Prometheus series: training step phases (from the run events, shared/run-events),
 * publish phases (the publisher's `phasesMs`), webhook delivery outcomes and latency (the outbox),
 * and the store counters read at each scrape. Request latency comes from the shared `httpMetrics`
 * middleware (`app.ts`).
 */
import { Counter, Histogram, observedCounter, observedGauge, type Registry } from "@loracast/shared/platform";
import type { RunEvent } from "@loracast/shared/run-events";
import type { AbandonedUploads, AdapterStore, ObjectStore } from "@loracast/shared/store";
import type { Outbox } from "@loracast/shared/webhooks";

/** Seconds, for phases from a millisecond to minutes. */
const PHASE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * One trainer's metrics on its own registry. `runEvent` is the run manager's `onEvent`,
 * `published` the publisher's `onPublished`, `delivered` the outbox's `onDelivered`.
 */
export class TrainerMetrics {
  private readonly stepPhase: Histogram<"phase">;
  private readonly steps: Counter;
  private readonly publishPhase: Histogram<"phase">;
  private readonly publishSeconds: Histogram;
  private readonly delivery: Histogram;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.stepPhase = new Histogram({
      name: "loracast_trainer_step_phase_seconds",
      help: "Seconds per training step phase, by the phase names of the run events (rollout, reward, old_logprobs, policy_logprobs, reference, train, optimizer; publish and checkpoint from their own events).",
      labelNames: ["phase"],
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.steps = new Counter({
      name: "loracast_trainer_steps_total",
      help: "Training steps completed, over all runs.",
      registers,
    });
    this.publishPhase = new Histogram({
      name: "loracast_trainer_publish_phase_seconds",
      help: "Seconds per adapter publish phase (the publisher's phasesMs: receive, encode, validate, hashWait, lock, number, blobs, extras, manifest, head, notify).",
      labelNames: ["phase"],
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.publishSeconds = new Histogram({
      name: "loracast_trainer_publish_seconds",
      help: "Seconds per adapter publish, all phases.",
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.delivery = new Histogram({
      name: "loracast_webhook_delivery_seconds",
      help: "Seconds from a webhook delivery's enqueue to the subscriber's 2xx, retries included.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers,
    });
  }

  /** Observes a run event: a step's phases, a publish's or a checkpoint's wall time. */
  runEvent(e: RunEvent): void {
    if (e.type === "step") {
      this.steps.inc();
      for (const [phase, ms] of Object.entries(e.phasesMs))
        if (ms !== null) this.stepPhase.observe({ phase }, ms / 1000);
    } else if (e.type === "published") this.stepPhase.observe({ phase: "publish" }, e.ms / 1000);
    else if (e.type === "checkpoint") this.stepPhase.observe({ phase: "checkpoint" }, e.ms / 1000);
  }

  /** Observes one publish's phases (milliseconds by phase name). */
  published(phasesMs: Readonly<Record<string, number>>): void {
    let total = 0;
    for (const [phase, ms] of Object.entries(phasesMs)) {
      this.publishPhase.observe({ phase }, ms / 1000);
      total += ms;
    }
    this.publishSeconds.observe(total / 1000);
  }

  /**
   * Registers `loracast_trainer_rollout_backend_info` (1, labelled with the rollout decoder's ORT
   * binding, execution provider and why that binding: `DecoderSession.backend`); once, at start.
   */
  rolloutBackend(b: { backend: string; ep: string; reason: string }): void {
    observedGauge(this.registry, {
      name: "loracast_trainer_rollout_backend_info",
      help: "1, labelled with the rollout decoder's ORT binding, execution provider and why that binding.",
      labelNames: ["backend", "ep", "reason"],
      // The reason can carry a loader message: bounded, it is a label value.
      read: () => [[{ backend: b.backend, ep: b.ep, reason: b.reason.slice(0, 200) }, 1]],
    });
  }

  /**
   * Registers `loracast_trainer_cuda_tf32_info` (1, labelled `tf32`: `off`, `on`, or
   * `not_applicable` off cuda): whether the training graph and the rollout decoder may use TF32
   * (`TRAINER_CUDA_TF32`, `cuda-precision.ts`); once, at start.
   */
  cudaTf32(tf32: "off" | "on" | "not_applicable"): void {
    observedGauge(this.registry, {
      name: "loracast_trainer_cuda_tf32_info",
      help: "1, labelled with whether the trainer's CUDA sessions (training graph, rollout decoder) may use TF32.",
      labelNames: ["tf32"],
      read: () => [[{ tf32 }, 1]],
    });
  }

  /** Observes one webhook delivery, `ms` after it was enqueued. */
  delivered(ms: number): void {
    this.delivery.observe(ms / 1000);
  }
}

/** What the scrape-time series read: the store, its uploads, the publisher's repairs, the outbox. */
export interface TrainerState {
  store: AdapterStore;
  objects: ObjectStore;
  abandonedUploads: AbandonedUploads;
  recordsRepaired: () => Readonly<Record<string, number>>;
  outbox: Outbox;
}

/** Registers the series read from `s` at each scrape (store counters, webhook outcomes). */
export function registerTrainerState(registry: Registry, s: TrainerState): void {
  const counter = (name: string, help: string, read: () => number) =>
    observedCounter(registry, { name, help, read });
  counter(
    "loracast_store_uploaded_bytes_total",
    "Bytes uploaded to the object store.",
    () => s.objects.traffic.uploaded,
  );
  counter(
    "loracast_store_blobs_repaired_total",
    "Corrupt blobs rewritten by a publish that carried the same bytes.",
    () => s.store.blobsRepaired,
  );
  observedCounter(registry, {
    name: "loracast_store_records_repaired_total",
    help: "Heads and rollback records rewritten to the store from the trainer's ledger, by record kind.",
    labelNames: ["record"],
    read: () => Object.entries(s.recordsRepaired()).map(([record, n]) => [{ record }, n]),
  });
  counter(
    "loracast_store_multipart_aborted_total",
    "Abandoned multipart uploads aborted.",
    () => s.abandonedUploads.aborted,
  );
  observedGauge(registry, {
    name: "loracast_store_multipart_aborts_pending",
    help: "Abandoned multipart uploads whose abort is still being retried.",
    read: () => s.abandonedUploads.pendingCount,
  });
  observedCounter(registry, {
    name: "loracast_webhook_deliveries_total",
    help: "Webhook delivery outcomes: delivered, failed_attempt (one per failed try; retried), dead (given up or refused by the subscriber), dropped (the subscriber left: a replica gone from its dns+ name, a removed subscription).",
    labelNames: ["outcome"],
    read: () => [
      [{ outcome: "delivered" }, s.outbox.stats.delivered],
      [{ outcome: "failed_attempt" }, s.outbox.stats.failedAttempts],
      [{ outcome: "dead" }, s.outbox.stats.dead],
      [{ outcome: "dropped" }, s.outbox.stats.dropped],
    ],
  });
  // The totals above under their earlier names, kept for dashboards and alerts that use them.
  counter(
    "loracast_webhooks_delivered_total",
    "Webhook deliveries delivered.",
    () => s.outbox.stats.delivered,
  );
  counter(
    "loracast_webhook_failed_attempts_total",
    "Webhook delivery attempts that failed (retried).",
    () => s.outbox.stats.failedAttempts,
  );
  counter("loracast_webhooks_dead_total", "Webhook deliveries given up.", () => s.outbox.stats.dead);
  counter(
    "loracast_webhooks_dropped_total",
    "Webhook deliveries dropped because their subscriber left.",
    () => s.outbox.stats.dropped,
  );
  observedGauge(registry, {
    name: "loracast_webhooks_pending",
    help: "Webhook deliveries on disk, not yet delivered.",
    read: async () => (await s.outbox.pending()).length,
  });
}
