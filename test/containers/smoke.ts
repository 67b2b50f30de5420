/**
 * Container smoke test (issue 20), run by `.ci/run` after `npm test`:
 *   node --import tsx test/containers/smoke.ts [--no-build]
 *
 * Builds the images (infra/images/build.sh; `--no-build` uses those already in podman's store), then
 * runs the deployment the compose file describes, as podman containers on the host network with a
 * read-only root filesystem: the demo model built into a volume by the trainer image, the embedded
 * S3 server, the trainer (signing key from a file made with openssl, as the README's deploy section
 * says) and two generators, on free ports. It checks each container's HEALTHCHECK, starts a short
 * GRPO run over REST, waits for it to finish, and checks that both generators serve the run's newest
 * version: `/v1/adapters` shows it active with the trainer's sha256, and a completion from the model
 * names it (`model`, `x-loracast-adapter-version`, `x-loracast-adapter-sha256`). Last, it stops a
 * generator with SIGTERM (`podman stop`) and expects exit code 0. The images carry loracast's ORT
 * addon (shared/ort-native, `LORACAST_ORT_NATIVE_ADDON`): the trainer and generator-0 run on it
 * (`*_ORT_BACKEND=ort-native`, which exits 2 where it does not load), generator-1 on the stock
 * binding (`auto` on cpu), and `/metrics` must say so. Containers and volumes are removed on exit,
 * also after a failure or Ctrl-C. Prints each phase's time; exits 1 on the first failure.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { runVersionsSchema } from "@loracast/shared/trainer-api";
import { freePortRange } from "../helpers/local-stack.ts";
import { SECRET, TOKEN } from "../helpers/stack.ts";
import { grpoRun, postJson, readRunEvents } from "../helpers/training.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");
const TAG = process.env.LORACAST_IMAGE_TAG ?? "dev";
const image = (name: string): string => `localhost/loracast-${name}:${TAG}`;
const id = `loracast-smoke-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), "loracast-smoke-"));
// The podman settings infra/images/lib.sh makes (runc, cgroupfs, no default ulimits).
const containersConf = join(work, "containers.conf");
writeFileSync(
  containersConf,
  '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
);
const podEnv = { ...process.env, CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? containersConf };

/** podman with runc; resolves with stdout, rejects with stderr in the message. */
async function podman(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run("podman", ["--runtime", "runc", ...args], {
      env: podEnv,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (e) {
    const { stderr } = e as { stderr?: string };
    throw new Error(`podman ${args.join(" ")}: ${(stderr ?? String(e)).trim().slice(-2000)}`);
  }
}

const started = Date.now();
let phaseStart = Date.now();
/** Prints the phase that just ended and its time. */
function phase(name: string): void {
  const now = Date.now();
  console.log(`smoke: ${name} (${((now - phaseStart) / 1000).toFixed(1)} s)`);
  phaseStart = now;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

/** Removes every container and volume this run made (labelled `id`), then the work dir. */
function cleanup(): void {
  const quiet = { env: podEnv, stdio: "ignore" } as const;
  const ids = (kind: "ps" | "volume"): string[] => {
    const args =
      kind === "ps"
        ? ["ps", "-aq", "--filter", `label=${id}`]
        : ["volume", "ls", "-q", "--filter", `label=${id}`];
    try {
      return execFileSync("podman", ["--runtime", "runc", ...args], { env: podEnv, encoding: "utf8" })
        .split("\n")
        .filter((l) => l !== "");
    } catch {
      return [];
    }
  };
  const containers = ids("ps");
  if (containers.length > 0) {
    try {
      execFileSync("podman", ["--runtime", "runc", "rm", "-f", "-t", "0", ...containers], quiet);
    } catch {
      // Already gone.
    }
  }
  const volumes = ids("volume");
  if (volumes.length > 0) {
    try {
      execFileSync("podman", ["--runtime", "runc", "volume", "rm", "-f", ...volumes], quiet);
    } catch {
      // Already gone.
    }
  }
  rmSync(work, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

/** Starts a detached container on the host network with a read-only root filesystem. */
async function start(
  name: string,
  img: string,
  env: Record<string, string>,
  mounts: string[],
): Promise<void> {
  await podman(
    "run",
    "-d",
    "--name",
    `${id}-${name}`,
    "--label",
    id,
    "--network",
    "host",
    "--read-only",
    ...mounts.flatMap((m) => ["-v", m]),
    ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
    img,
  );
}

/** The container's log, stdout and stderr (podman logs replays them as such). */
async function logs(name: string): Promise<string> {
  try {
    const { stdout, stderr } = await run("podman", ["--runtime", "runc", "logs", `${id}-${name}`], {
      env: podEnv,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout + stderr;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Waits for the container's `ready` log line; fails with its log if it exits or takes too long. */
async function waitReady(name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await logs(name)).includes('"msg":"ready"')) return;
    const state = (await podman("inspect", "-f", "{{.State.Status}}", `${id}-${name}`)).trim();
    if (state !== "running" || Date.now() > deadline) {
      throw new Error(`${name} is not ready (${state}):\n${(await logs(name)).slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The labels of `/metrics`' `<metric>{backend=…,ep=…,reason=…} 1` line at `url` (the decoder's ORT
 * binding: services/generator/src/routes/ops.ts, services/trainer/src/metrics.ts), or null.
 */
async function backendInfo(url: string, metric: string): Promise<string | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${metric}{`));
  return line === undefined ? null : line.slice(metric.length, line.lastIndexOf("}") + 1);
}

async function volume(name: string): Promise<string> {
  await podman("volume", "create", "--label", id, `${id}-${name}`);
  return `${id}-${name}`;
}

async function main(): Promise<void> {
  if (!process.argv.includes("--no-build")) {
    execFileSync(join(ROOT, "infra/images/build.sh"), { stdio: "inherit", env: podEnv });
    phase("images built");
  }

  // The demo model and its prompts, built by the trainer image into a volume, as compose's demo-model.
  const models = await volume("models");
  await podman(
    "run",
    "--rm",
    "--label",
    id,
    "--network",
    "none",
    "--read-only",
    "--no-healthcheck",
    "-v",
    `${models}:/models`,
    image("trainer"),
    "node",
    "/app/build-demo-model.mjs",
    "/models/demo",
  );
  phase("demo model built into a volume");

  // The signing key pair, made as the README's deploy section makes it.
  const keyFile = join(work, "signing-key.pem");
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", keyFile]);
  execFileSync("chmod", ["0644", keyFile]);
  const der = execFileSync("openssl", ["pkey", "-in", keyFile, "-pubout", "-outform", "DER"]);
  const publicKey = der.subarray(der.length - 32).toString("base64");

  const base = await freePortRange(4);
  const [s3Port, trainerPort, g0Port, g1Port] = [base, base + 1, base + 2, base + 3];
  const url = (port: number): string => `http://127.0.0.1:${port}`;
  const s3 = {
    S3_ENDPOINT: url(s3Port),
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    S3_BUCKET: "loracast",
    S3_PREFIX: "loracast",
    S3_FORCE_PATH_STYLE: "true",
  };
  await start("s3", image("s3-local"), { S3_LOCAL_HOST: "127.0.0.1", S3_LOCAL_PORT: String(s3Port) }, [
    `${await volume("s3")}:/data`,
  ]);
  await waitReady("s3", 60_000);
  // generator-0 on the image's ORT addon, generator-1 on onnxruntime-node (auto on cpu).
  const generators = [
    { name: "generator-0", port: g0Port, backend: "ort-native" },
    { name: "generator-1", port: g1Port, backend: "auto" },
  ];
  await start(
    "trainer",
    image("trainer"),
    {
      ...s3,
      TRAINER_HOST: "127.0.0.1",
      TRAINER_PORT: String(trainerPort),
      TRAINER_API_TOKEN: TOKEN,
      WEBHOOK_SECRET: SECRET,
      TRAINER_SIGNING_KEY_FILE: "/run/secrets/signing-key.pem",
      TRAINER_MODEL_DIR: "/models/demo",
      TRAINER_ORT_BACKEND: "ort-native",
      TRAINER_EGRESS_ALLOW_PRIVATE: "true",
      WEBHOOK_SUBSCRIBERS: generators.map((g) => `${url(g.port)}/v1/webhooks/adapters`).join(","),
    },
    [
      `${await volume("trainer")}:/data`,
      `${models}:/models:ro`,
      `${keyFile}:/run/secrets/signing-key.pem:ro`,
    ],
  );
  for (const g of generators) {
    await start(
      g.name,
      image("generator"),
      {
        ...s3,
        GENERATOR_HOST: "127.0.0.1",
        GENERATOR_PORT: String(g.port),
        GENERATOR_NAME: g.name,
        GENERATOR_MODEL_DIR: "/models/demo",
        GENERATOR_MODEL_NAME: "demo-base",
        GENERATOR_ORT_BACKEND: g.backend,
        WEBHOOK_SECRETS: SECRET,
        MANIFEST_PUBLIC_KEYS: publicKey,
      },
      [`${models}:/models:ro`],
    );
  }
  await waitReady("trainer", 120_000);
  for (const g of generators) await waitReady(g.name, 120_000);
  phase("s3, trainer and 2 generators ready");

  for (const name of ["s3", "trainer", ...generators.map((g) => g.name)]) {
    await podman("healthcheck", "run", `${id}-${name}`).catch((e: Error) => {
      throw new Error(`${name}: HEALTHCHECK failed: ${e.message}`);
    });
  }
  phase("HEALTHCHECK passes in every container");

  // The addon loads in both images: the decoders say which binding they run, and why.
  const expected = [
    {
      name: "trainer",
      port: trainerPort,
      metric: "loracast_trainer_rollout_backend_info",
      labels: '{backend="ort-native",ep="cpu",reason="ort-native on cpu"}',
    },
    ...generators.map((g) => ({
      name: g.name,
      port: g.port,
      metric: "loracast_engine_backend_info",
      labels:
        g.backend === "ort-native"
          ? '{backend="ort-native",ep="cpu",reason="ort-native on cpu"}'
          : '{backend="onnxruntime-node",ep="cpu",reason="auto on cpu"}',
    })),
  ];
  for (const e of expected) {
    const labels = await backendInfo(url(e.port), e.metric);
    check(labels === e.labels, `${e.name}: ${e.metric}${labels ?? " missing"}, expected ${e.labels}`);
  }
  phase("the ORT addon loads in the trainer and generator images (/metrics)");

  const runName = "smoke";
  const created = await postJson(
    `${url(trainerPort)}/v1/runs`,
    grpoRun(runName, "/models/demo-prompts.jsonl", 4),
  );
  check(created.status === 201, `POST /v1/runs: HTTP ${created.status} ${await created.text()}`);
  const events = await readRunEvents(`${url(trainerPort)}/v1/runs/${runName}/events`);
  const last = events.at(-1)?.data;
  check(last?.type === "status" && last.status === "completed", `run ended with ${JSON.stringify(last)}`);
  const versions = runVersionsSchema.parse(
    await (await fetch(`${url(trainerPort)}/v1/runs/${runName}/versions`)).json(),
  );
  const newest = versions.versions.find((v) => v.version === versions.current);
  check(newest?.sha256 != null && newest.version >= 2, `newest version: ${JSON.stringify(versions)}`);
  phase(`GRPO run of 4 steps completed over REST: newest version v${newest?.version}`);

  for (const g of generators) {
    // Each generator converges to the newest version (webhook, or reconcile within seconds).
    const deadline = Date.now() + 60_000;
    let served: Response;
    for (;;) {
      served = await fetch(`${url(g.port)}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: runName, prompt: "q5:", max_tokens: 8, seed: 1 }),
      });
      if (served.headers.get("x-loracast-adapter-version") === String(newest?.version)) break;
      check(
        Date.now() < deadline,
        `${g.name} still serves ${served.headers.get("x-loracast-adapter-version")}`,
      );
      await served.text();
      await new Promise((r) => setTimeout(r, 500));
    }
    check(served.status === 200, `${g.name}: HTTP ${served.status}`);
    check(served.headers.get("x-loracast-adapter-sha256") === newest?.sha256, `${g.name}: another sha256`);
    const body = (await served.json()) as {
      model: string;
      choices: { text: string }[];
      usage: { completion_tokens: number };
    };
    check(body.model === `${runName}@${newest?.version}`, `${g.name}: model ${body.model}`);
    check(body.usage.completion_tokens > 0, `${g.name}: no tokens generated`);
    console.log(
      `smoke: ${g.name} (${g.backend}) serves ${body.model} (sha256 ${newest?.sha256?.slice(0, 12)}…): ${JSON.stringify(body.choices[0]?.text)}`,
    );
  }
  phase("both generators serve the newest version, with completions from the model");

  await podman("stop", "-t", "30", `${id}-generator-1`);
  const code = (await podman("inspect", "-f", "{{.State.ExitCode}}", `${id}-generator-1`)).trim();
  check(code === "0", `generator-1 exited ${code} on SIGTERM`);
  phase("SIGTERM: generator-1 drained and exited 0");
  console.log(`smoke: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((e: unknown) => {
  console.error(`smoke: FAILED: ${(e as Error).message}`);
  process.exitCode = 1;
});
