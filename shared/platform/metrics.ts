/** Prometheus text exposition (format 0.0.4) for the few counters and gauges our services export. */

/** One counter or gauge to expose: its name, its type, and its sample or labelled samples. */
export interface Metric {
  name: string;
  type: "counter" | "gauge";
  /** One unlabelled sample, or labelled samples (either may be empty: the TYPE line still shows). */
  value?: number;
  samples?: readonly (readonly [labels: Readonly<Record<string, string>>, value: number])[];
}

/** The `content-type` of Prometheus' text exposition format, version 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4";

/**
 * Renders metrics in the text exposition format: a `# TYPE` line per metric, then its samples,
 * `name{label="value"} value`, one a line, ending with a newline.
 */
export function prometheusText(metrics: readonly Metric[]): string {
  const lines: string[] = [];
  for (const m of metrics) {
    lines.push(`# TYPE ${m.name} ${m.type}`);
    if (m.value !== undefined) lines.push(`${m.name} ${m.value}`);
    for (const [labels, value] of m.samples ?? []) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(",");
      lines.push(`${m.name}{${l}} ${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
