/**
 * The Python trainer's handoff on the GPU host (issue: external trainers). Starts the embedded S3
 * server, a trainer service that verifies uploads against the base's config.json, and two
 * generators serving the int4 artifacts on the WebGPU EP; then runs
 * `shared/python/examples/grpo_peft.py --rollouts=fleet` (PyTorch + PEFT, bf16) against them, which
 * publishes every step through the Python client and samples the next rollouts from exactly the
 * new version. Afterwards, in the same run, it measures the floor: for every published blob, as
 * many concurrent plain `GetObject` downloads as there are generators, read to the end. Last,
 * `shared/python/examples/sft_callback.py` runs a real `transformers.Trainer` with the publishing
 * callback against the same fleet, and fails the run when its checks fail.
 *
 * usage: node python-fleet.mjs --work=DIR [--steps=N --prompts=P --generations=G --prompt-tokens=L
 *   --max-tokens=C --ep=webgpu|cpu --generators=2 --floor-rounds=3 --out=DIR]
 * The checkpoint and artifacts come from `bench-train --build-only` (qwen25-05b-random,
 * qwen25-05b-int4-train under --work).
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { generatorEnv, S3_LOCAL_CREDENTIALS, trainerEnv } from "@loracast/dev-support/stack";
import { type Service, startService } from "@loracast/dev-support/supervisor";
import { Signer } from "@loracast/shared/signing";
import { blobKey } from "@loracast/shared/store";
import { BUCKET, s3Env, startS3 } from "../../helpers/s3.ts";
import { SECRET, TOKEN } from "../../helpers/stack.ts";
import { percentile } from "../percentile.ts";

const { values } = parseArgs({
  options: {
    work: { type: "string" },
    steps: { type: "string", default: "8" },
    prompts: { type: "string", default: "2" },
    generations: { type: "string", default: "4" },
    "prompt-tokens": { type: "string", default: "64" },
    "max-tokens": { type: "string", default: "32" },
    ep: { type: "string", default: "webgpu" },
    generators: { type: "string", default: "2" },
    "floor-rounds": { type: "string", default: "3" },
    out: { type: "string" },
  },
});
if (values.work === undefined) throw new Error("--work=DIR is required (bench-train --build-only writes it)");
const checkpoint = join(values.work, "qwen25-05b-random");
const modelDir = join(values.work, "qwen25-05b-int4-train");
const say = (s: string) => process.stdout.write(`${s}\n`);
const scratch = mkdtempSync(join(tmpdir(), "loracast-python-fleet-"));
const outDir = values.out ?? scratch;
mkdirSync(outDir, { recursive: true });
// Every service's log lines, prefixed with its name: what to read when a run goes wrong.
const serviceLog = createWriteStream(join(outDir, "services.log"));
// The trainer's `published` and the generators' `adapter activated` lines carry their phase times.
const phaseLines: { service: string; phases: Record<string, number> }[] = [];
const echo = (name: string) => (line: string) => {
  serviceLog.write(`${name} ${line}\n`);
  if (!line.startsWith("{")) return;
  const l = JSON.parse(line) as Record<string, unknown>;
  if (l.msg === "published")
    phaseLines.push({ service: "trainer", phases: l.phasesMs as Record<string, number> });
  if (l.msg === "adapter activated") {
    const { manifestMs, downloadMs, verifyMs, ms } = l as Record<string, number>;
    phaseLines.push({
      service: "generator",
      phases: { manifestMs, downloadMs, verifyMs, ms } as Record<string, number>,
    });
  }
};

const s3 = await startS3(join(scratch, "s3"));
const signer = Signer.generate();
const keyFile = join(scratch, "trainer.pem");
writeFileSync(keyFile, signer.toPem(), { mode: 0o600 });
// Services get only the variables named here; the Vulkan ICD paths setup.sh exported go along.
const passThrough = Object.fromEntries(
  ["VK_DRIVER_FILES", "__EGL_VENDOR_LIBRARY_FILENAMES", "LD_LIBRARY_PATH"].flatMap((k) =>
    process.env[k] === undefined ? [] : [[k, process.env[k] as string]],
  ),
);
const generators: Service[] = [];
const services: Service[] = [s3];
try {
  const loadStart = performance.now();
  for (let i = 0; i < Number(values.generators); i++) {
    const g = await startService(
      "generator",
      {
        ...passThrough,
        ...s3Env(s3.url),
        ...generatorEnv({ name: `g${i}`, port: 0, webhookSecret: SECRET, publicKey: signer.publicKey }),
        GENERATOR_MODEL_DIR: modelDir,
        GENERATOR_EXECUTION_PROVIDER: values.ep === "cpu" ? "cpu" : "webgpu",
        GENERATOR_MODEL_NAME: "qwen25-05b",
      },
      { name: `g${i}`, readyTimeoutMs: 600_000, echo: echo(`g${i}`) },
    );
    generators.push(g);
    services.push(g);
  }
  say(`generators ready in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`);
  const trainer = await startService(
    "trainer",
    {
      ...s3Env(s3.url),
      ...trainerEnv({
        port: 0,
        dataDir: join(scratch, "trainer"),
        apiToken: TOKEN,
        signingKeyFile: keyFile,
        webhookSecret: SECRET,
        generators,
      }),
      TRAINER_BASE_CONFIG: join(checkpoint, "config.json"),
    },
    { echo: echo("trainer") },
  );
  services.push(trainer);

  const steps = join(outDir, "python-fleet-steps.jsonl");
  const args = [
    "shared/python/examples/grpo_peft.py",
    `--checkpoint=${checkpoint}`,
    "--rollouts=fleet",
    `--trainer=${trainer.url}`,
    `--token=${TOKEN}`,
    `--generators=${generators.map((g) => g.url).join(",")}`,
    `--steps=${values.steps}`,
    `--prompts=${values.prompts}`,
    `--generations=${values.generations}`,
    `--prompt-tokens=${values["prompt-tokens"]}`,
    `--max-tokens=${values["max-tokens"]}`,
    `--out=${steps}`,
  ];
  const python = (argv: string[]) =>
    new Promise<number | null>((resolve) => {
      const p = spawn("python3", argv, { stdio: "inherit", env: { ...process.env, PYTHONUNBUFFERED: "1" } });
      p.on("exit", resolve);
    });
  const code = await python(args);
  if (code !== 0) throw new Error(`grpo_peft.py exited with ${code}`);

  const records = readFileSync(steps, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number | string>);
  const num = (r: Record<string, number | string>, k: string) => Number(r[k]);
  const handoff = records.map((r) => 1000 * (num(r, "publish") + num(r, "activate")));
  const activate = records.map((r) => 1000 * num(r, "activate"));
  const publish = records.map((r) => 1000 * num(r, "publish"));

  // The floor: the same bytes, read by as many plain concurrent GETs as there are generators.
  const client = new S3Client({
    endpoint: s3.url,
    region: "us-east-1",
    credentials: S3_LOCAL_CREDENTIALS,
    forcePathStyle: true,
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const download = async (key: string): Promise<number> => {
    const r = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    let bytes = 0;
    for await (const chunk of r.Body as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
    return bytes;
  };
  const floor: number[] = [];
  for (let round = 0; round < Number(values["floor-rounds"]); round++) {
    for (const r of records) {
      const key = `loracast/${blobKey(String(r.sha256))}`;
      const t = performance.now();
      const got = await Promise.all(generators.map(() => download(key)));
      floor.push(performance.now() - t);
      if (got.some((b) => b !== num(r, "adapter_bytes")))
        throw new Error(`floor read ${got} bytes of ${key}`);
    }
  }
  const ms = (x: number) => `${x.toFixed(0)} ms`;
  const target = 1.5 * percentile(floor, 50) + 150;
  const verdict = (xs: number[]) =>
    `p50 ${ms(percentile(xs, 50))} ${percentile(xs, 50) <= target ? "meets it" : "MISSES it"}`;
  const lines = [
    `| measure (${records.length} publishes, ${generators.length} generators) | p50 | p95 |`,
    "| --- | --- | --- |",
    `| publish call (upload, verify, store, sign, notify) | ${ms(percentile(publish, 50))} | ${ms(percentile(publish, 95))} |`,
    `| publish returned → all generators active | ${ms(percentile(activate, 50))} | ${ms(percentile(activate, 95))} |`,
    `| publish call → all generators active | ${ms(percentile(handoff, 50))} | ${ms(percentile(handoff, 95))} |`,
    `| floor: ${generators.length} concurrent GETs of the blob | ${ms(percentile(floor, 50))} | ${ms(percentile(floor, 95))} |`,
    "",
    `target p50 ≤ 1.5 × floor p50 + 150 ms = ${ms(target)}. ` +
      `From the publish call's return (the handoff, as bench:handoff defines it): ${verdict(activate)}; ` +
      `from the publish call's start (upload through the trainer included): ${verdict(handoff)}.`,
    `adapter bytes per version: ${[...new Set(records.map((r) => r.adapter_bytes))].join(", ")}; ` +
      `uploaded to the store per version: ${[...new Set(records.map((r) => r.uploaded_bytes))].join(", ")}`,
  ];
  for (const service of ["trainer", "generator"]) {
    const rows = phaseLines.filter((p) => p.service === service).slice(service === "trainer" ? 1 : 2);
    const names = Object.keys(rows[0]?.phases ?? {});
    lines.push(
      `${service} phases, p50 over warm publishes: ${names
        .map(
          (n) =>
            `${n} ${ms(
              percentile(
                rows.map((r) => r.phases[n] ?? 0),
                50,
              ),
            )}`,
        )
        .join(", ")}`,
    );
  }
  for (const l of lines) say(l);
  writeFileSync(join(outDir, "python-fleet-summary.md"), `${lines.join("\n")}\n`);

  // The publishing callback under a real transformers.Trainer, against the same fleet.
  const callback = await python([
    "shared/python/examples/sft_callback.py",
    `--checkpoint=${checkpoint}`,
    `--trainer=${trainer.url}`,
    `--token=${TOKEN}`,
    `--generators=${generators.map((g) => g.url).join(",")}`,
  ]);
  if (callback !== 0) throw new Error(`sft_callback.py exited with ${callback}`);
} finally {
  await Promise.all(services.reverse().map((s) => s.stop()));
  serviceLog.end();
  rmSync(scratch, { recursive: true, force: true });
}
