/**
 * `npm start`: the whole system on loopback. Starts the embedded S3 server, the generators and the
 * trainer as separate processes, prints their URLs, and runs the demo: GRPO on the demo base, with
 * each generator activating the versions the trainer publishes.
 *
 * Ctrl-C (a terminal sends SIGINT to every process of the group at once) or SIGTERM stops the trainer,
 * then the generators, then S3, and prints `stopped.`; a second Ctrl-C exits at once. Any failure (a
 * service that does not start, a service that exits while the stack is up, a demo the trainer refuses
 * or whose run fails) prints one line, stops every service the stack started and exits 1.
 */
import { join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { generatorEnv, s3ClientEnv, s3LocalEnv, stackPorts, trainerEnv } from "@loracast/dev-support/stack";
import { type Service, ServiceGroup } from "@loracast/dev-support/supervisor";
import { createLogger, LOG_LEVELS, onShutdown, parseCommandLine } from "@loracast/shared/platform";
import { dashboardLink } from "./dashboard-link.ts";
import { envSchema } from "./env.ts";
import { describeExit, describeFailure } from "./failures.ts";

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
parseCommandLine({
  usage: "npm start",
  about:
    "The whole system on loopback: the embedded S3 server, the trainer and the generators as separate processes, then a demo GRPO run. Configured by the environment only.",
  flags: {},
  env: envSchema,
});
const parsed = envSchema.safeParse(process.env);
if (!parsed.success) {
  for (const i of parsed.error.issues) process.stderr.write(`${i.path.join(".")}: ${i.message}\n`);
  process.exit(2);
}
const env = parsed.data;
// The stack's own S3 client (it saves the demo's adapter) would print the AWS SDK's notice that its
// releases from 2027 on need Node 22 into the user's terminal; it concerns SDK upgrades, not this run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const log = createLogger({ service: "local-stack" }, { level: env.LOG_LEVEL });
const data = resolve(env.LORACAST_DATA_DIR);
const ports = stackPorts(env.LORACAST_BASE_PORT, env.LORACAST_GENERATORS);

const stopping = new AbortController();
const group = new ServiceGroup((child, exit) => {
  // A Ctrl-C ends every process of the group at once, and a service may exit on it before this
  // process has handled its own SIGINT: wait a moment before calling the exit unexpected.
  void delay(300).then(() =>
    fail(`${child.name} exited unexpectedly (${describeExit(exit)}); stopping the stack.`),
  );
});
const shutdown = onShutdown(log, async () => {
  stopping.abort();
  await group.stop();
  say("stopped.");
});

/** Prints `line`, stops every service and exits 1; does nothing once the stack is stopping. */
function fail(line: string): void {
  if (stopping.signal.aborted) return;
  process.stderr.write(`${line}\n`);
  shutdown(1);
}

// The services' lines at LOG_LEVEL and above are shown, prefixed with the service's name.
const shown = new Set(LOG_LEVELS.slice(LOG_LEVELS.indexOf(env.LOG_LEVEL)));
const echoErrors = (name: string) => (line: string) => {
  if (stopping.signal.aborted) return;
  const level = /^\{"level":"(\w+)"/.exec(line)?.[1];
  if (level !== undefined && shown.has(level as (typeof LOG_LEVELS)[number])) say(`  [${name}] ${line}`);
};
// Services log at info (their `ready` line, which the stack waits for, is an info line), or debug.
const serviceLogLevel = { LOG_LEVEL: env.LOG_LEVEL === "debug" ? "debug" : "info" };

async function main(): Promise<void> {
  // Loaded here, not at the top: the model builder and the AWS SDK take a while to load, and until
  // the signal handlers above are installed a Ctrl-C ends the process without `stopped.`.
  const { buildDemoModel, DEMO_SEED } = await import("@loracast/dev-support/models");
  const { runTrainingDemo } = await import("./training-demo.ts");
  const { AdapterStore, S3ObjectStore, s3EnvSchema, s3SettingsFromEnv } = await import(
    "@loracast/shared/store"
  );
  const { loadOrCreateSigner, TrustedKeys } = await import("@loracast/shared/signing");
  // The trainer signs every manifest and rollback record with this key, kept in the data dir across
  // starts; the generators trust only its public key.
  const keyFile = join(data, "keys", "manifest-signing.pem");
  const signer = await loadOrCreateSigner(keyFile);
  if (!signer.ok) throw new Error(`signing key: ${signer.error.message}`);
  const publicKey = signer.value.publicKey;
  const s3 = await group.start(
    "s3-local",
    { ...s3LocalEnv(ports.s3, join(data, "s3"), "loracast"), ...serviceLogLevel },
    {
      echo: echoErrors("s3"),
    },
  );
  const s3Env = s3ClientEnv(s3.url, "loracast", "loracast");

  // Built once per data dir: a later start finds its manifest and reuses it.
  const modelDir = await buildDemoModel(
    { checkpointDir: join(data, "demo-base"), modelDir: join(data, "demo-model") },
    DEMO_SEED,
  );
  const generators: Service[] = [];
  for (const [i, port] of ports.generators.entries()) {
    const name = `generator-${i}`;
    const g = await group.start(
      "generator",
      {
        ...s3Env,
        ...generatorEnv({ name, port, webhookSecret: env.WEBHOOK_SECRET, publicKey }),
        GENERATOR_MODEL_DIR: modelDir,
        GENERATOR_MODEL_NAME: "demo-base",
        ...serviceLogLevel,
      },
      { name, echo: echoErrors(name) },
    );
    generators.push(g);
  }

  // The demo run writes TensorBoard event files here (`reportTo: ["tensorboard"]`).
  const tensorboardDir = join(data, "tensorboard");
  const trainer = await group.start(
    "trainer",
    {
      ...s3Env,
      ...trainerEnv({
        port: ports.trainer,
        dataDir: join(data, "trainer"),
        apiToken: env.TRAINER_API_TOKEN,
        signingKeyFile: keyFile,
        webhookSecret: env.WEBHOOK_SECRET,
        generators,
      }),
      TRAINER_MODEL_DIR: modelDir,
      ...serviceLogLevel,
      TRAINER_TENSORBOARD_DIR: tensorboardDir,
    },
    { echo: echoErrors("trainer") },
  );

  say("loracast local stack is up:");
  say(`  s3 (embedded)  ${s3.url}   bucket loracast, key/secret S3RVER/S3RVER, data in ${join(data, "s3")}`);
  say(`  trainer        ${trainer.url}   bearer token: ${env.TRAINER_API_TOKEN}`);
  for (const g of generators) say(`  ${g.name.padEnd(14)} ${g.url}`);
  say(`  dashboard      ${dashboardLink(trainer.url, env.TRAINER_API_TOKEN)}`);

  if (env.LORACAST_DEMO === "true") {
    await runTrainingDemo({
      trainer,
      generators,
      token: env.TRAINER_API_TOKEN,
      dataDir: data,
      tensorboardDir,
      steps: env.LORACAST_DEMO_STEPS,
      store: new AdapterStore(new S3ObjectStore(s3SettingsFromEnv(s3EnvSchema.parse(s3Env))), {
        trusted: new TrustedKeys([publicKey]),
      }),
      signal: stopping.signal,
      say,
    });
  }
  say("\nCtrl-C stops everything.");
}

main().catch(async (e: unknown) => {
  // A failed request is often the symptom of a service that just exited; give that exit the moment
  // it needs to be reported as the cause. A failure caused by stopping says nothing.
  if (!stopping.signal.aborted) await delay(1000);
  fail(describeFailure(e, ports));
});
