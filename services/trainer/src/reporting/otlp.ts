/**
 * Run metrics over OTLP (OpenTelemetry's protocol: W&B, MLflow, Grafana and any collector read it),
 * with the OpenTelemetry SDK (`@opentelemetry/sdk-metrics`, `@opentelemetry/exporter-metrics-otlp-http`).
 * On when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is
 * set: the exporter reads those itself, and sends OTLP/HTTP JSON to `<endpoint>/v1/metrics`. Each
 * scalar (scalars.ts: the TensorBoard tag is the metric name) is a gauge with the attribute `run`,
 * holding the newest value; `loracast/step` says at which step. Exported every
 * OTEL_METRIC_EXPORT_INTERVAL ms, and at once when a run ends or the trainer stops.
 */

import type { Logger } from "@loracast/shared/platform";
import type { RunEvent } from "@loracast/shared/run-events";
import { DiagLogLevel, diag, type Gauge } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { runEventScalars } from "./scalars.ts";

/** Every run's scalars as OTLP gauges, through one meter provider per trainer process. */
export class OtlpReporter {
  private readonly provider: MeterProvider;
  private readonly meter;
  private readonly gauges = new Map<string, Gauge>();

  /**
   * `exportIntervalMs`: OTEL_METRIC_EXPORT_INTERVAL; `instance`: TRAINER_INSTANCE, an attribute of
   * every point; `log` gets the SDK's warnings and errors (a collector that refuses or is down), which
   * it would otherwise drop.
   */
  constructor(
    exportIntervalMs: number,
    private readonly instance: string,
    log: Logger,
  ) {
    const warn = (message: string, ...args: unknown[]) =>
      log.warn("OTLP metrics export", { message, detail: args.map(String).join(" ") });
    const quiet = () => {};
    diag.setLogger({ error: warn, warn, info: quiet, debug: quiet, verbose: quiet }, DiagLogLevel.WARN);
    const reader = new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(),
      exportIntervalMillis: exportIntervalMs,
      exportTimeoutMillis: Math.min(30_000, exportIntervalMs),
    });
    this.provider = new MeterProvider({ readers: [reader] });
    this.meter = this.provider.getMeter("loracast-trainer");
  }

  private gauge(name: string): Gauge {
    let g = this.gauges.get(name);
    if (g === undefined) {
      g = this.meter.createGauge(name);
      this.gauges.set(name, g);
    }
    return g;
  }

  /**
   * Records the event's scalars as the run's newest values (non-finite ones are left out: OTLP
   * readers chart NaN badly); a run's final `status` event exports at once.
   */
  record(run: string, e: RunEvent): void {
    const attributes = { run, "service.instance.id": this.instance };
    const s = runEventScalars(e);
    if (s !== null) {
      for (const [name, value] of s.values)
        if (Number.isFinite(value)) this.gauge(name).record(value, attributes);
      this.gauge("loracast/step").record(s.step, attributes);
    }
    if (e.type === "status") void this.provider.forceFlush().catch(() => {});
  }

  /** Exports what is pending, then stops the exporter (the trainer's shutdown). */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
