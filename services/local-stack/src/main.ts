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
import { createLogger, onShutdown } from "@loracast/shared/platform";
import { ROOT, type Service, ServiceGroup } from "@loracast/shared/supervisor";
import { envSchema } from "./env.ts";
import { describeExit, describeFailure, stackPorts } from "./failures.ts";

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const parsed = envSchema.safeParse(process.env);
if (!parsed.success) {
  for (const i of parsed.error.issues) process.stderr.write(`${i.path.join(".")}: ${i.message}\n`);
  process.exit(2);
}
const env = parsed.data;
// The stack's own S3 client (it saves the demo's adapter) would print the AWS SDK's notice that its
// releases from 2027 on need Node 22 into the user's terminal; it concerns SDK upgrades, not this run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const log = createLogger({ service: "local-stack" }, { quiet: true });
const data = resolve(env.LORACAST_DATA_DIR);
const baseConfig = join(ROOT, "infra", "demo-base", "config.json");
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

const echoErrors = (name: string) => (line: string) => {
  if (stopping.signal.aborted) return;
  if (line.includes('"level":"error"') || line.includes('"level":"warn"')) say(`  [${name}] ${line}`);
};

async function main(): Promise<void> {
  // Loaded here, not at the top: the model builder and the AWS SDK take a while to load, and until
  // the signal handlers above are installed a Ctrl-C ends the process without `stopped.`.
  const { ensureDemoModel } = await import("./demo-model.ts");
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
    { S3_LOCAL_PORT: String(ports.s3), S3_LOCAL_DIR: join(data, "s3"), S3_BUCKET: "loracast" },
    { echo: echoErrors("s3") },
  );
  const s3Env = {
    S3_ENDPOINT: s3.url,
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    S3_BUCKET: "loracast",
    S3_PREFIX: "loracast",
  };

  const modelDir = await ensureDemoModel(data, baseConfig, 20261126);
  const generators: Service[] = [];
  for (const [i, port] of ports.generators.entries()) {
    const name = `generator-${i}`;
    const g = await group.start(
      "generator",
      {
        ...s3Env,
        GENERATOR_NAME: name,
        GENERATOR_PORT: String(port),
        GENERATOR_MODEL_DIR: modelDir,
        GENERATOR_MODEL_NAME: "demo-base",
        WEBHOOK_SECRETS: env.WEBHOOK_SECRET,
        MANIFEST_PUBLIC_KEYS: publicKey,
      },
      { name, echo: echoErrors(name) },
    );
    generators.push(g);
  }

  const trainer = await group.start(
    "trainer",
    {
      ...s3Env,
      TRAINER_PORT: String(ports.trainer),
      TRAINER_DATA_DIR: join(data, "trainer"),
      TRAINER_API_TOKEN: env.TRAINER_API_TOKEN,
      // The local stack's generators (and any reward server a user runs beside it) are on loopback.
      TRAINER_EGRESS_ALLOW_PRIVATE: "true",
      TRAINER_MODEL_DIR: modelDir,
      TRAINER_SIGNING_KEY_FILE: keyFile,
      WEBHOOK_SECRET: env.WEBHOOK_SECRET,
      WEBHOOK_SUBSCRIBERS: generators.map((g) => `${g.url}/v1/webhooks/adapters`).join(","),
    },
    { echo: echoErrors("trainer") },
  );

  say("loracast local stack is up:");
  say(`  s3 (embedded)  ${s3.url}   bucket loracast, key/secret S3RVER/S3RVER, data in ${join(data, "s3")}`);
  say(`  trainer        ${trainer.url}   bearer token: ${env.TRAINER_API_TOKEN}`);
  for (const g of generators) say(`  ${g.name.padEnd(14)} ${g.url}`);

  if (env.LORACAST_DEMO === "true") {
    await runTrainingDemo({
      trainer,
      generators,
      token: env.TRAINER_API_TOKEN,
      dataDir: data,
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
