/**
 * Parses Prometheus text exposition with the Prometheus project's own parser: the Python client's
 * `prometheus_client.parser.text_string_to_metric_families` (Debian package
 * `python3-prometheus-client`, run with Debian's `/usr/bin/python3`, whose path it installs into).
 * It raises on a malformed line, which fails the parse here.
 */
import { runProcess } from "./run-process.ts";

/** One metric family as parsed: counters are named without `_total`; samples keep full names. */
export interface MetricFamily {
  name: string;
  /** counter, gauge, histogram, summary, or unknown for a family with no TYPE line. */
  type: string;
  /** The HELP text; empty without a HELP line. */
  help: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const SCRIPT = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)}
        for s in f.samples]})
json.dump(out, sys.stdout)
`;

const PYTHON = "/usr/bin/python3";

/** Parses `text`; rejects with the parser's error when a line is not valid exposition format. */
export async function parsePrometheus(text: string): Promise<MetricFamily[]> {
  const r = await runProcess(PYTHON, ["-c", SCRIPT], {
    env: { PATH: process.env.PATH ?? "", PYTHONDONTWRITEBYTECODE: "1" },
    input: text,
  }).catch((e: Error) => {
    throw new Error(`${PYTHON}: ${e.message} (install the Debian package python3-prometheus-client)`);
  });
  if (r.code !== 0) throw new Error(`the Prometheus parser refused the text: ${r.stderr.trim()}`);
  const raw = JSON.parse(r.stdout) as (Omit<MetricFamily, "samples"> & {
    samples: { name: string; labels: Record<string, string>; value: number | string }[];
  })[];
  return raw.map((f) => ({ ...f, samples: f.samples.map((s) => ({ ...s, value: Number(s.value) })) }));
}

/**
 * The value of the sample named `name` whose labels include `labels`, summed over every match (a
 * histogram's `_count` over its other labels, say); undefined when no sample matches.
 */
export function sampleValue(
  families: readonly MetricFamily[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  let sum: number | undefined;
  for (const f of families)
    for (const s of f.samples)
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        sum = (sum ?? 0) + s.value;
  return sum;
}
