/**
 * `npm start`: the whole system on loopback. Starts the embedded S3 server, the generators and the
 * trainer as separate processes, prints their URLs, and runs the demo: GRPO on the demo base, with
 * each generator activating the versions the trainer publishes. Ctrl-C stops the trainer, then the generators, then S3.
 */
import { join, resolve } from "node:path";
import { createLogger, onShutdown } from "@loracast/shared/platform";
import { ROOT, type Service, startService } from "@loracast/shared/supervisor";
import { ensureDemoModel } from "./demo-model.ts";
import { envSchema } from "./env.ts";
import { runTrainingDemo } from "./training-demo.ts";

const env = envSchema.parse(process.env);
const log = createLogger({ service: "local-stack" }, { quiet: true });
const data = resolve(env.LORACAST_DATA_DIR);
const baseConfig = join(ROOT, "infra", "demo-base", "config.json");
const services: Service[] = [];
const say = (line: string) => process.stdout.write(`${line}\n`);

onShutdown(log, async () => {
  for (const s of [...services].reverse()) await s.stop();
  say("stopped.");
});

const echoErrors = (name: string) => (line: string) => {
  if (line.includes('"level":"error"') || line.includes('"level":"warn"')) say(`  [${name}] ${line}`);
};

const s3 = await startService(
  "s3-local",
  { S3_LOCAL_PORT: String(env.LORACAST_BASE_PORT), S3_LOCAL_DIR: join(data, "s3"), S3_BUCKET: "loracast" },
  { echo: echoErrors("s3") },
);
services.push(s3);
const s3Env = {
  S3_ENDPOINT: s3.url,
  S3_ACCESS_KEY_ID: "S3RVER",
  S3_SECRET_ACCESS_KEY: "S3RVER",
  S3_BUCKET: "loracast",
  S3_PREFIX: "loracast",
};

const modelDir = await ensureDemoModel(data, baseConfig, 20261126);
const generators: Service[] = [];
for (let i = 0; i < env.LORACAST_GENERATORS; i++) {
  const name = `generator-${i}`;
  const g = await startService(
    "generator",
    {
      ...s3Env,
      GENERATOR_NAME: name,
      GENERATOR_PORT: String(env.LORACAST_BASE_PORT + 2 + i),
      GENERATOR_MODEL_DIR: modelDir,
      GENERATOR_MODEL_NAME: "demo-base",
      WEBHOOK_SECRETS: env.WEBHOOK_SECRET,
    },
    { name, echo: echoErrors(name) },
  );
  generators.push(g);
  services.push(g);
}

const trainer = await startService(
  "trainer",
  {
    ...s3Env,
    TRAINER_PORT: String(env.LORACAST_BASE_PORT + 1),
    TRAINER_DATA_DIR: join(data, "trainer"),
    TRAINER_API_TOKEN: env.TRAINER_API_TOKEN,
    TRAINER_MODEL_DIR: modelDir,
    WEBHOOK_SECRET: env.WEBHOOK_SECRET,
    WEBHOOK_SUBSCRIBERS: generators.map((g) => `${g.url}/v1/webhooks/adapters`).join(","),
  },
  { echo: echoErrors("trainer") },
);
services.splice(1, 0, trainer);

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
    say,
  });
  const g0 = generators[0] as Service;
  say(`\nAsk a generator: curl ${g0.url}/v1/completions -H 'content-type: application/json' \\`);
  say(`  -d '{"model": "<run>", "prompt": "q5:", "max_tokens": 16}'`);
}
say("\nCtrl-C stops everything.");
