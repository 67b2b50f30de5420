/**
 * npm run bench:publish [-- --publishes=8 --subscribers=2 --compare=<git ref>]
 *
 * The trainer's publish path alone, in this process, on the real embedded S3 server (its own
 * process): a Qwen2.5-0.5B-shaped LoRA (r = 16 on all 7 projections, float32, 35 MB) serialized as
 * PEFT safetensors (`LoraParams.toPeft`) and hashed as the run loop does (on a worker thread while
 * the publisher validates, `sha256Concurrent`), then `Publisher.publish` with the trainer's store,
 * signer, ledger and webhook outbox (`subscribers` targets on a loopback server that answers 204),
 * with the new version's session feeds (`LoraParams.feeds`, what the loop hands the rollout engine
 * and its probe, made once per publish) made while the publisher checks and hashes the weights on
 * worker threads, as the run loop does (before them, the loop before session 16, for `--compare`;
 * `feeds` is their time, and the last phase they overlap absorbs it; `--feeds=first` makes this
 * tree's way make them first too, to compare the publish paths alone). Each publish changes every
 * factor, so every blob is new. `--compare=<ref>` alternates, publish by publish, this tree's publish path
 * with the one at git commit `<ref>` (its `shared/` and `services/trainer/src/`, checked out under
 * `.bench/compare/<commit>/` and loaded beside this tree's; same S3 server, a run each)
 * and prints both. Prints each phase's median over the publishes after the first (of each way),
 * `cpu`, this process's CPU time per publish (user + system, every thread; the S3 server is another
 * process), and the S3 requests per publish by operation (the server's own counts); the whole
 * step's publish (with the probe forward) is `bench:train`'s.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "@loracast/dev-support/fixtures";
import { buildModelSpec, parseDecoderDims } from "@loracast/shared/model-spec";
import { parseLoraConfig } from "@loracast/shared/peft";
import { createLogger, parseCommandLine, usageError } from "@loracast/shared/platform";
import { createRng } from "@loracast/shared/random";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import * as storeModule from "@loracast/shared/store";
import { LoraParams } from "@loracast/shared/training";
import { Outbox } from "@loracast/shared/webhooks";
import * as ledgerModule from "../../../services/trainer/src/ledger/index.ts";
import * as publisherModule from "../../../services/trainer/src/publisher.ts";
import { SubscriptionRegistry } from "../../../services/trainer/src/subscriptions.ts";
import { s3RequestCounts, s3Settings, startS3 } from "../../helpers/s3.ts";
import { QWEN25_05B } from "../engine/configs.ts";
import { percentile } from "../percentile.ts";

const cli = {
  usage: "npm run bench:publish -- [flags]",
  about:
    "Publish probe: a Qwen2.5-0.5B-shaped r=16 LoRA through the trainer's publish path (PEFT safetensors, S3 upload, signed manifest and head, webhooks) on the embedded S3 server; per-phase medians and S3 requests per publish.",
  flags: {
    publishes: { type: "string", default: "8", help: "publishes of each way (the first is not counted)" },
    subscribers: { type: "string", default: "2", help: "webhook subscribers (a loopback server)" },
    feeds: {
      type: "string",
      default: "during",
      help: "when this tree's way makes the feeds: during (the run loop's order) or first (before the encode)",
    },
    compare: {
      type: "string",
      help: "a git ref: alternate this tree's publish path with that commit's, publish by publish",
    },
  },
} as const;
const { values } = parseCommandLine(cli);
// Checked before anything starts (the S3 server, the scratch folder): a refused flag leaves nothing.
const publishes = Number(values.publishes);
if (!Number.isInteger(publishes) || publishes < 2 || publishes > 1000)
  usageError(
    cli,
    `--publishes takes an integer from 2 to 1000 (the first is not counted), not ${values.publishes}`,
  );
const subscribers = Number(values.subscribers);
if (!Number.isInteger(subscribers) || subscribers < 0 || subscribers > 64)
  usageError(cli, `--subscribers takes an integer from 0 to 64, not ${values.subscribers}`);
if (values.feeds !== "during" && values.feeds !== "first")
  usageError(cli, `--feeds is during or first, not ${values.feeds}`);
const compareCommit = values.compare === undefined ? undefined : commitOf(values.compare);

/** The commit `ref` names in this repository; a usage error (exit 2) when it names none. */
function commitOf(ref: string): string {
  const found = spawnSync("git", ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], { cwd: ROOT });
  if (found.status !== 0) usageError(cli, `--compare: ${ref} is not a commit of this repository`);
  return found.stdout.toString().trim();
}

/** The modules one way's publish path is made of: this tree's, or a commit's. */
interface PublishPath {
  store: typeof storeModule;
  ledger: typeof ledgerModule;
  publisher: typeof publisherModule;
}

/**
 * The publish path as of git commit `commit` (resolved by `commitOf`): its `shared/` and `services/trainer/src/`, written under
 * `.bench/compare/<commit>/` (once per commit) with `node_modules/@loracast/shared` linked to that
 * `shared/`, so its imports resolve to that commit's code and its dependencies to this tree's.
 */
async function publishPathAt(commit: string): Promise<PublishPath> {
  const root = ROOT;
  const dir = join(root, ".bench", "compare", commit);
  if (!existsSync(join(dir, "node_modules"))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, "node_modules", "@loracast"), { recursive: true });
    const tar = execFileSync("git", ["archive", commit, "shared", "services/trainer/src"], {
      cwd: root,
      maxBuffer: 1 << 30,
    });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
    symlinkSync(join(dir, "shared"), join(dir, "node_modules", "@loracast", "shared"));
  }
  const src = join(dir, "services", "trainer", "src");
  return {
    store: await import(join(dir, "shared", "store", "index.ts")),
    ledger: await import(join(src, "ledger", "index.ts")),
    publisher: await import(join(src, "publisher.ts")),
  };
}

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
const subscriptions = new SubscriptionRegistry(
  join(scratch, "subscriptions.json"),
  Array.from({ length: subscribers }, (_, i) => `${hookUrl}/${i}`),
);
await subscriptions.load();
const outbox = new Outbox({ dir: join(scratch, "outbox"), secret: `whsec_${"A".repeat(32)}`, clock, log });
await outbox.start();

/** One way to publish: its modules' publisher on a store client and ledger of its own, its own run. */
interface Way {
  name: string;
  path: PublishPath;
  publisher: publisherModule.Publisher;
  phases: Record<string, number>[];
  /** The last publish's weights, encoded into again as the run loop does. */
  spare?: Uint8Array;
}

function wayOf(name: string, path: PublishPath): Way {
  const store = new path.store.AdapterStore(new path.store.S3ObjectStore(s3Settings(s3.url, "probe")), {
    signer,
    trusted: new TrustedKeys([signer.publicKey]),
  });
  const phases: Record<string, number>[] = [];
  const publisher = new path.publisher.Publisher({
    store,
    outbox,
    subscriptions,
    clock,
    log,
    instance: "probe",
    spec,
    ledger: new path.ledger.RunLedger({
      store,
      dir: join(scratch, `ledger-${name}`),
      clock,
      log,
      headTtlMs: 3_600_000,
    }),
    onPublished: (p) => phases.push({ ...p }),
  });
  return { name, path, publisher, phases };
}

const here: PublishPath = { store: storeModule, ledger: ledgerModule, publisher: publisherModule };
const ways = [wayOf("after", here)];
if (values.compare !== undefined && compareCommit !== undefined)
  ways.push(wayOf(`before (${values.compare})`, await publishPathAt(compareCommit)));

/** Milliseconds `f` takes. */
function measure(f: () => unknown): number {
  const start = performance.now();
  f();
  return performance.now() - start;
}

const rng = createRng(2);
const requests = new Map<string, Record<string, number>[]>(ways.map((w) => [w.name, []]));
for (let i = 0; i < publishes * ways.length; i++) {
  const way = ways[i % ways.length] as Way;
  for (const m of params.modules) m.b.fill(rng.next());
  const counts0 = await s3RequestCounts(s3.url);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // Before session 16 the loop made the probe's feeds first; now it makes them while the
  // publisher checks and hashes the encoded weights on worker threads (the probe's forward is not
  // run here).
  const feedsFirst = way.name !== "after" || values.feeds === "first";
  let feedsMs = feedsFirst ? measure(() => params.feeds()) : 0;
  const tFeeds = performance.now();
  // Into the last publish's weights once it returned, as the run loop encodes (a SharedArrayBuffer
  // the first time, so that the hash reads it on a worker thread).
  const files = params.toPeft({}, way.spare ?? storeModule.sharedBytes);
  const phasesMs = { encode: Math.round(performance.now() - tFeeds) };
  const publishing = way.publisher.publish(`probe-${i % ways.length}`, files.configBytes, files.weights, {
    weightsSha256: way.path.store.sha256Concurrent(files.weights),
    phasesMs,
  });
  if (!feedsFirst) feedsMs = measure(() => params.feeds());
  const r = await publishing;
  if (!r.ok) throw r.error;
  way.spare = files.weights;
  const last = way.phases.at(-1) ?? {};
  last.feeds = Math.round(feedsMs);
  last.total = Math.round(performance.now() - t0);
  const used = process.cpuUsage(cpu0);
  last.cpu = Math.round((used.user + used.system) / 1000);
  const counts1 = await s3RequestCounts(s3.url);
  requests
    .get(way.name)
    ?.push(Object.fromEntries(Object.entries(counts1).map(([op, n]) => [op, n - (counts0[op] ?? 0)])));
  if (i === 0) process.stdout.write(`adapter: ${(files.weights.byteLength / 2 ** 20).toFixed(1)} MiB\n`);
}
outbox.stop();
hooks.close();
await s3.stop();
rmSync(scratch, { recursive: true, force: true });

for (const way of ways) {
  const counted = way.phases.slice(1);
  process.stdout.write(`\n${way.name}:\n| phase | median ms |\n|---|---|\n`);
  const names = [...new Set(counted.flatMap((p) => Object.keys(p)))];
  for (const name of names) {
    const xs = counted.map((p) => p[name] ?? 0);
    process.stdout.write(`| ${name} | ${percentile(xs, 50).toFixed(0)} |\n`);
  }
  const perPublish = (requests.get(way.name) ?? []).slice(1);
  const ops = [...new Set(perPublish.flatMap((c) => Object.keys(c)))].filter((op) =>
    perPublish.some((c) => (c[op] ?? 0) > 0),
  );
  const line = ops
    .map(
      (op) =>
        `${op} ${percentile(
          perPublish.map((c) => c[op] ?? 0),
          50,
        )}`,
    )
    .join(", ");
  process.stdout.write(`S3 requests per publish (median): ${line}\n`);
}
