/**
 * npm run bench:publish [-- --publishes=8 --subscribers=2 --compare]
 *
 * The trainer's publish path alone, in this process, on the real embedded S3 server (its own
 * process): a Qwen2.5-0.5B-shaped LoRA (r = 16 on all 7 projections, float32, 35 MB) serialized as
 * PEFT safetensors (`LoraParams.toPeft`) and hashed as the run loop does (on a worker thread while
 * the publisher validates, `sha256Concurrent`), then `Publisher.publish`
 * with the trainer's store, signer, ledger and webhook outbox (`subscribers` targets on a loopback
 * server that answers 204), then the new version's session feeds (`LoraParams.feeds`, what the
 * loop hands the rollout engine and its probe, made once per publish, before the encode). Each
 * publish changes every factor, so every blob is new. `--compare` alternates publish by publish with
 * the run loop as of session 15's first wave (the hash on this thread before the publish, feeds made
 * twice: for the probe, then after the publish for the rollouts) and prints both. Prints each
 * phase's median over the publishes after the first (of each way), and `cpu`, this process's CPU time per
 * publish (user + system, every thread; the S3 server is another process); the whole step's publish
 * (with the probe forward) is `bench:train`'s.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { parseLoraConfig } from "@loracast/shared/peft";
import { createLogger, parseCommandLine } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import { AdapterStore, S3ObjectStore, sha256Concurrent, sharedBytes } from "@loracast/shared/store";
import { LoraParams } from "@loracast/shared/training";
import { Outbox } from "@loracast/shared/webhooks";
import { RunLedger } from "../../../services/trainer/src/ledger/index.ts";
import { Publisher } from "../../../services/trainer/src/publisher.ts";
import { SubscriptionRegistry } from "../../../services/trainer/src/subscriptions.ts";
import { s3Settings, startS3 } from "../../helpers/s3.ts";
import { QWEN25_05B } from "../engine/configs.ts";
import { percentile } from "../percentile.ts";

const { values } = parseCommandLine({
  usage: "npm run bench:publish -- [flags]",
  about:
    "Publish probe: a Qwen2.5-0.5B-shaped r=16 LoRA through the trainer's publish path (PEFT safetensors, S3 upload, signed manifest and head, webhooks) on the embedded S3 server; per-phase medians.",
  flags: {
    publishes: { type: "string", default: "8", help: "publishes (the first is not counted)" },
    subscribers: { type: "string", default: "2", help: "webhook subscribers (a loopback server)" },
    compare: {
      type: "boolean",
      default: false,
      help: "alternate with the first wave's loop (hash on this thread, feeds twice)",
    },
  },
});
const publishes = Number(values.publishes);

const dims = parseDecoderDims(QWEN25_05B);
if (!dims.ok) throw new Error(dims.error.message);
const spec = buildModelSpec(dims.value);
const lora = parseLoraConfig({ peft_type: "LORA", r: 16, lora_alpha: 32, target_modules: "all-linear" });
if (!lora.ok) throw new Error(lora.error.message);
const params = LoraParams.init(spec, lora.value, createRng(1));

const scratch = mkdtempSync(join(tmpdir(), "loracast-publish-probe-"));
const s3 = await startS3(join(scratch, "s3"));
const hooks = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(204).end());
});
await new Promise<void>((done) => hooks.listen(0, "127.0.0.1", done));
const hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;

const log = createLogger({}, { write: () => {} });
const clock = { now: () => Date.now() };
const signer = Signer.generate();
const store = new AdapterStore(new S3ObjectStore(s3Settings(s3.url, "probe")), {
  signer,
  trusted: new TrustedKeys([signer.publicKey]),
});
const subscriptions = new SubscriptionRegistry(
  join(scratch, "subscriptions.json"),
  Array.from({ length: Number(values.subscribers) }, (_, i) => `${hookUrl}/${i}`),
);
await subscriptions.load();
const outbox = new Outbox({ dir: join(scratch, "outbox"), secret: `whsec_${"A".repeat(32)}`, clock, log });
await outbox.start();
let phases: Record<string, number>[] = [];
const publisher = new Publisher({
  store,
  outbox,
  subscriptions,
  clock,
  log,
  instance: "probe",
  spec,
  ledger: new RunLedger({ store, dir: join(scratch, "ledger"), clock, log, headTtlMs: 3_600_000 }),
  onPublished: (p) => phases.push({ ...p }),
});

const rng = createRng(2);
type Way = "after" | "before";
const ways: Way[] = values.compare ? ["after", "before"] : ["after"];
const byWay = new Map<Way, Record<string, number>[]>(ways.map((w) => [w, []]));
// Each way encodes into its own last weights: SharedArrayBuffer-backed after, plain before.
const spare = new Map<Way, Uint8Array>();
for (let i = 0; i < publishes * ways.length; i++) {
  const way = ways[i % ways.length] as Way;
  phases = byWay.get(way) as Record<string, number>[];
  for (const m of params.modules) m.b.fill(rng.next());
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // The loop's probe feeds, made before the encode (the probe's forward is not run here).
  params.feeds();
  const tFeeds = performance.now();
  // Into the last publish's weights once it returned, as the run loop encodes.
  const files = params.toPeft({}, spare.get(way) ?? (way === "after" ? sharedBytes : undefined));
  const t1 = performance.now();
  const phasesMs: Record<string, number> = {
    probeFeeds: Math.round(tFeeds - t0),
    encode: Math.round(t1 - tFeeds),
  };
  let sha256: string | Promise<string>;
  if (way === "after") sha256 = sha256Concurrent(files.weights);
  else {
    sha256 = createHash("sha256").update(files.weights).digest("hex");
    phasesMs.sha256 = Math.round(performance.now() - t1);
  }
  const r = await publisher.publish("probe", files.configBytes, files.weights, {
    weightsSha256: sha256,
    phasesMs,
  });
  if (!r.ok) throw r.error;
  spare.set(way, files.weights);
  const t2 = performance.now();
  // Before: the rollouts' feeds for the new version were made again after the publish.
  if (way === "before") params.feeds();
  const last = phases.at(-1) ?? {};
  last.feeds = Math.round(performance.now() - t2);
  last.total = Math.round(performance.now() - t0);
  const used = process.cpuUsage(cpu0);
  last.cpu = Math.round((used.user + used.system) / 1000);
  if (i === 0) process.stdout.write(`adapter: ${(files.weights.byteLength / 2 ** 20).toFixed(1)} MiB\n`);
}
outbox.stop();
hooks.close();
await s3.stop();
rmSync(scratch, { recursive: true, force: true });

for (const [way, all] of byWay) {
  const counted = all.slice(1);
  process.stdout.write(`\n${way}:\n| phase | median ms |\n|---|---|\n`);
  const names = [...new Set(counted.flatMap((p) => Object.keys(p)))];
  for (const name of names) {
    const xs = counted.map((p) => p[name] ?? 0);
    process.stdout.write(`| ${name} | ${percentile(xs, 50).toFixed(0)} |\n`);
  }
}
