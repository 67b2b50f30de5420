/**
 * `npm start`: the whole system on loopback. Starts the embedded S3 server, the generators and the
 * trainer as separate processes, prints their URLs, publishes a demo adapter and shows it go active
 * everywhere. Ctrl-C stops the trainer, then the generators, then S3.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createLogger, onShutdown } from "@loracast/shared/platform";
import { eventually, ROOT, type Service, startService } from "@loracast/shared/supervisor";
import { writeDemoAdapter } from "./demo.ts";
import { ensureDemoModel } from "./demo-model.ts";
import { envSchema } from "./env.ts";

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
    TRAINER_BASE_CONFIG: baseConfig,
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
  const dir = writeDemoAdapter(baseConfig, join(data, "demo-adapter"), 20261126);
  const form = new FormData();
  for (const f of ["adapter_config.json", "adapter_model.safetensors"])
    form.set(f, new Blob([readFileSync(join(dir, f))]), f);
  const t0 = performance.now();
  const res = await fetch(`${trainer.url}/v1/runs/demo/adapters`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.TRAINER_API_TOKEN}` },
    body: form,
  });
  const published = (await res.json()) as { version: number; sha256: string };
  say(`\ndemo: published ${dir} as demo@${published.version} (sha256 ${published.sha256.slice(0, 16)}…)`);
  for (const g of generators) {
    await eventually(`${g.name} active`, async () => {
      const a = (await (await fetch(`${g.url}/v1/adapters`)).json()) as {
        active: Record<string, { version: number }>;
      };
      return a.active.demo?.version === published.version ? true : undefined;
    });
    say(
      `demo: ${g.name} serves demo@${published.version} (${(performance.now() - t0).toFixed(0)} ms after publish)`,
    );
  }
  say(`\nPublish your own: curl -H 'authorization: Bearer ${env.TRAINER_API_TOKEN}' \\`);
  say(
    `  -F adapter_config.json=@${dir}/adapter_config.json -F adapter_model.safetensors=@${dir}/adapter_model.safetensors \\`,
  );
  say(`  ${trainer.url}/v1/runs/demo/adapters`);

  const g0 = generators[0] as Service;
  const completion = await fetch(`${g0.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "demo", prompt: "Hello", max_tokens: 8, temperature: 0 }),
  });
  const body = (await completion.json()) as { model: string; choices: { text: string }[] };
  say(
    `\ndemo: ${g0.name} completed "Hello" on ${body.model} (x-loracast-adapter-sha256 ${completion.headers.get("x-loracast-adapter-sha256")?.slice(0, 16)}…): ${JSON.stringify(body.choices[0]?.text)}`,
  );
  say("  (random demo weights, so the text is noise; the point is which adapter produced it)");
  say(`Ask yourself: curl ${g0.url}/v1/completions -H 'content-type: application/json' \\`);
  say(`  -d '{"model": "demo", "prompt": "Hello", "max_tokens": 16}'`);
}
say("\nCtrl-C stops everything.");
