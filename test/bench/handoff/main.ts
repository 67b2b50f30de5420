/**
 * Handoff benchmark (issue: adapter handoff core). For each generator count N and adapter size, it
 * publishes distinct adapters through the real trainer and measures the time from the publish call's
 * return to the moment the last generator reports the version active (generators stamp activatedAt).
 * In the same run it measures the floor: N concurrent plain GetObject downloads of the same bytes from
 * the same server. It also checks bytes uploaded per version and generator RSS over many publishes.
 *
 *   npm run bench:handoff -- [--generators 1,4,8] [--sizes 1,32,256] [--publishes 20] [--rss-publishes 200]
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { webhookSubscribers, webhookUrl } from "@loracast/dev-support/stack";
import type { LogLine } from "@loracast/dev-support/supervisor";
import { supervisorEnvSchema } from "@loracast/dev-support/supervisor";
import { parseCommandLine } from "@loracast/shared/platform";
import { publishResultSchema } from "@loracast/shared/trainer-api";
import { adapterOfSize, distinctWeights, LLAMA_7B_DIMS, writeBaseConfig } from "../../helpers/adapters.ts";
import { BUCKET } from "../../helpers/s3.ts";
import { activationLine, type Stack, startStack } from "../../helpers/stack.ts";
import { percentile } from "../percentile.ts";

const { values } = parseCommandLine({
  usage: "npm run bench:handoff -- [flags]",
  about:
    "Handoff benchmark: publish -> last generator active for each generator count and adapter size through the real trainer, against the floor of plain concurrent downloads; bytes uploaded per version and generator RSS over many publishes.",
  flags: {
    generators: { type: "string", default: "1,4,8", help: "generator counts, comma-separated" },
    sizes: { type: "string", default: "1,32,256", help: "adapter sizes in MiB, comma-separated" },
    publishes: { type: "string", default: "20", help: "publishes per generator count and size" },
    "rss-publishes": { type: "string", default: "200", help: "publishes in the RSS measurement" },
  },
  env: supervisorEnvSchema,
});
const counts = values.generators.split(",").map(Number);
const sizesMb = values.sizes.split(",").map(Number);
const publishes = Number(values.publishes);
const rssPublishes = Number(values["rss-publishes"]);

/**
 * Where the slowest generator's time went: webhook arrival after the publish returned, then its
 * own manifest, download and verify phases, and the rest (the rollback re-read and activation).
 */
function phases(line: LogLine, returned: number): number[] {
  const [manifest, download, verify, total] = [line.manifestMs, line.downloadMs, line.verifyMs, line.ms].map(
    Number,
  ) as [number, number, number, number];
  const arrived = Date.parse(String(line.t)) - total - returned;
  return [arrived, manifest, download, verify, total - manifest - download - verify];
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

async function floor(stack: Stack, n: number, key: string, rounds: number): Promise<number[]> {
  const workers = Array.from(
    { length: n },
    () =>
      new Worker(join(import.meta.dirname, "floor-worker.mjs"), {
        workerData: { endpoint: stack.s3.url, bucket: BUCKET },
      }),
  );
  const once = (w: Worker, k: string) =>
    new Promise<number>((res) => {
      w.once("message", res);
      w.postMessage(k);
    });
  await Promise.all(workers.map((w) => once(w, key)));
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await Promise.all(workers.map((w) => once(w, key)));
    out.push(performance.now() - t0);
  }
  await Promise.all(workers.map((w) => w.terminate()));
  return out;
}

interface Row {
  n: number;
  mb: number;
  p50: number;
  p95: number;
  floorP50: number;
  floorP95: number;
  target: number;
  pass: boolean;
  uploadRatio: number;
}
const rows: Row[] = [];

for (const n of counts) {
  const stack = await startStack({ generators: 0 });
  const base = writeBaseConfig(join(stack.dir, "base"), LLAMA_7B_DIMS);
  for (let i = 0; i < n; i++) {
    stack.generators.push(
      await stack.startGenerator(`g${i}`, {
        GENERATOR_BASE_CONFIG: base,
        CACHE_MAX_VERSIONS: "2",
        RECONCILE_INTERVAL_MS: "3000",
      }),
    );
  }
  await stack.trainer.stop();
  await stack.startTrainer({ WEBHOOK_SUBSCRIBERS: webhookSubscribers(stack.generators) });
  try {
    for (const mb of sizesMb) {
      const run = `bench-${mb}mb`;
      const adapter = adapterOfSize(base, mb, mb);
      const lat: number[] = [];
      const slowest: number[][] = [];
      let ratio = 0;
      let lastKey = "";
      for (let i = 0; i < publishes; i++) {
        const weights = distinctWeights(adapter.weights, i);
        const res = await stack.publish(run, { config: adapter.config, weights });
        const returned = Date.now();
        if (res.status !== 201) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
        const body = publishResultSchema.parse(await res.json());
        const manifestBytes = (
          await (await fetch(`${stack.s3.url}/${BUCKET}/loracast/${body.manifestKey}`)).arrayBuffer()
        ).byteLength;
        // The config blob is identical every time, so after the first publish only weights + manifest go up.
        const expected = weights.byteLength + manifestBytes + (i === 0 ? adapter.config.byteLength : 0);
        ratio = Math.max(ratio, body.uploadedBytes / expected);
        const lines = await Promise.all(stack.generators.map((g) => activationLine(g, run, body.version)));
        const last = lines.reduce((a, b) => (Date.parse(String(b.t)) > Date.parse(String(a.t)) ? b : a));
        lat.push(Date.parse(String(last.t)) - returned);
        slowest.push(phases(last, returned));
        lastKey = `loracast/blobs/sha256/${body.sha256}`;
      }
      const fl = await floor(stack, n, lastKey, Math.max(5, Math.min(publishes, 20)));
      const target = 1.5 * percentile(fl, 50) + 150;
      const row = {
        n,
        mb: adapter.weights.byteLength / 2 ** 20,
        p50: percentile(lat, 50),
        p95: percentile(lat, 95),
        floorP50: percentile(fl, 50),
        floorP95: percentile(fl, 95),
        target,
        pass: percentile(lat, 50) <= target,
        uploadRatio: ratio,
        slowestPhasesP50: Object.fromEntries(
          ["arrived", "manifest", "download", "verify", "rest"].map((name, i) => [
            name,
            percentile(
              slowest.map((p) => p[i] as number),
              50,
            ),
          ]),
        ),
      };
      rows.push(row);
      console.log(JSON.stringify({ bench: "handoff", ...row }));
    }
  } finally {
    await stack.stop();
  }
}

// Re-publishing identical bytes uploads only the manifest.
{
  const stack = await startStack({ generators: 0 });
  try {
    const adapter = adapterOfSize(writeBaseConfig(join(stack.dir, "base"), LLAMA_7B_DIMS), 32, 1);
    await stack.publish("dedupe", adapter);
    const again = publishResultSchema.parse(await (await stack.publish("dedupe", adapter)).json());
    const manifestBytes = (
      await (await fetch(`${stack.s3.url}/${BUCKET}/loracast/${again.manifestKey}`)).arrayBuffer()
    ).byteLength;
    console.log(
      JSON.stringify({
        bench: "dedupe",
        adapterBytes: adapter.weights.byteLength,
        republishUploadedBytes: again.uploadedBytes,
        manifestBytes,
      }),
    );
  } finally {
    await stack.stop();
  }
}

// Generator RSS over many publishes of a 32 MB adapter, against its cache bound.
if (rssPublishes > 0) {
  const stack = await startStack({ generators: 0 });
  try {
    const base = writeBaseConfig(join(stack.dir, "base"), LLAMA_7B_DIMS);
    const cacheVersions = 4;
    const g = await stack.startGenerator("rss", {
      GENERATOR_BASE_CONFIG: base,
      CACHE_MAX_VERSIONS: String(cacheVersions),
    });
    stack.generators.push(g);
    await stack.trainer.stop();
    await stack.startTrainer({ WEBHOOK_SUBSCRIBERS: webhookUrl(g.url) });
    const adapter = adapterOfSize(base, 32, 32);
    const pid = g.proc.pid as number;
    const baseline = rssMb(pid);
    let peak = 0;
    for (let i = 0; i < rssPublishes; i++) {
      const body = publishResultSchema.parse(
        await (
          await stack.publish("rss", { config: adapter.config, weights: distinctWeights(adapter.weights, i) })
        ).json(),
      );
      await activationLine(g, "rss", body.version);
      peak = Math.max(peak, rssMb(pid));
    }
    const after = rssMb(pid);
    const boundMb = (cacheVersions * adapter.weights.byteLength) / 2 ** 20;
    const limit = (baseline + boundMb) * 1.1;
    console.log(
      JSON.stringify({
        bench: "rss",
        publishes: rssPublishes,
        adapterMb: adapter.weights.byteLength / 2 ** 20,
        baselineMb: baseline,
        cacheBoundMb: boundMb,
        afterMb: after,
        peakMb: peak,
        limitMb: limit,
        pass: after <= limit,
      }),
    );
  } finally {
    await stack.stop();
  }
}

console.log(
  "\n| N | adapter MB | p50 ms | p95 ms | floor p50 ms | floor p95 ms | target (1.5×floor+150) | p50 ≤ target | uploaded / (adapter+manifest) |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.n} | ${r.mb.toFixed(1)} | ${r.p50.toFixed(0)} | ${r.p95.toFixed(0)} | ${r.floorP50.toFixed(0)} | ${r.floorP95.toFixed(0)} | ${r.target.toFixed(0)} | ${r.pass ? "yes" : "NO"} | ${r.uploadRatio.toFixed(3)} |`,
  );
}
