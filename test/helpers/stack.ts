/** A whole local stack of real processes: the embedded S3 server, generators and a trainer. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixture, LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { generatorEnv, trainerEnv } from "@loracast/dev-support/stack";
import { eventually, type LogLine, type Service, startService } from "@loracast/dev-support/supervisor";
import { type AdapterList, type AdapterRow, adapterListSchema } from "@loracast/shared/generator-api";
import type { VersionState } from "@loracast/shared/manifest";
import { formatVersionRef } from "@loracast/shared/manifest";
import { buildArtifacts } from "@loracast/shared/model-builder";
import { Signer } from "@loracast/shared/signing";
import type { AdapterFiles } from "./adapters.ts";
import { s3Env, startS3 } from "./s3.ts";

export const TOKEN = "test-token-0123456789abcdef";
export const SECRET = `whsec_${Buffer.from("loracast-test-webhook-secret-32b").toString("base64")}`;

export type { AdapterRow };

export interface Stack {
  dir: string;
  /**
   * The trainer's manifest signing key (its PEM under `dir/keys/trainer.pem`); generators trust its
   * public key (`MANIFEST_PUBLIC_KEYS`) unless `generatorEnv` says otherwise.
   */
  signer: Signer;
  /** Where that key's PEM is, for another trainer that signs as this stack's trainer. */
  signingKeyFile: string;
  s3: Service & { dir: string };
  trainer: Service;
  generators: Service[];
  startGenerator(name: string, env?: Record<string, string>, port?: number): Promise<Service>;
  startTrainer(env?: Record<string, string>): Promise<Service>;
  publish(run: string, files: AdapterFiles): Promise<Response>;
  /** The generator's `GET /v1/adapters`, parsed with the shared schema. */
  adapters(g: Service): Promise<AdapterList>;
  waitActive(g: Service, run: string, version: number, timeoutMs?: number): Promise<AdapterRow>;
  waitState(
    g: Service,
    run: string,
    version: number,
    state: VersionState,
    timeoutMs?: number,
  ): Promise<AdapterRow>;
  stop(): Promise<void>;
}

export interface StackOptions {
  generators?: number;
  generatorEnv?: Record<string, string>;
  trainerEnv?: Record<string, string>;
  /** How long each service may take to log `ready` (a fleet's starts queue for the CPU). @default 30000 */
  readyTimeoutMs?: number;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), "loracast-stack-"));
  const s3 = await startS3(join(dir, "s3"));
  const common = s3Env(s3.url);
  // Like `npm start`: the stack makes the trainer's key pair and hands generators the public key.
  const signer = Signer.generate();
  const keyFile = join(dir, "keys", "trainer.pem");
  mkdirSync(join(dir, "keys"));
  writeFileSync(keyFile, signer.toPem(), { mode: 0o600 });
  const generators: Service[] = [];
  let trainer: Service | undefined;
  const startOptions = options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs };

  const startGenerator = async (
    name: string,
    env: Record<string, string> = {},
    port = 0,
  ): Promise<Service> => {
    const g = await startService(
      "generator",
      {
        ...common,
        ...generatorEnv({ name, port, webhookSecret: SECRET, publicKey: signer.publicKey }),
        GENERATOR_BASE_CONFIG: LLAMA_CONFIG,
        GENERATOR_MODEL_NAME: "llama-tiny",
        RECONCILE_INTERVAL_MS: "1000",
        ...options.generatorEnv,
        ...env,
      },
      { name, ...startOptions },
    );
    return g;
  };
  for (let i = 0; i < (options.generators ?? 0); i++) generators.push(await startGenerator(`g${i}`));

  const startTrainer = async (env: Record<string, string> = {}): Promise<Service> => {
    trainer = await startService(
      "trainer",
      {
        ...common,
        ...trainerEnv({
          port: 0,
          dataDir: join(dir, "trainer"),
          apiToken: TOKEN,
          signingKeyFile: keyFile,
          webhookSecret: SECRET,
          generators,
        }),
        ...options.trainerEnv,
        ...env,
      },
      startOptions,
    );
    return trainer;
  };
  await startTrainer();

  const adapters: Stack["adapters"] = async (g) => {
    const r = await fetch(`${g.url}/v1/adapters`);
    return adapterListSchema.parse(await r.json());
  };
  const waitState: Stack["waitState"] = (g, run, version, state, timeoutMs = 20_000) =>
    eventually(
      `${g.name}: ${formatVersionRef(run, version)} ${state}`,
      async () =>
        (await adapters(g)).data.find((a) => a.run === run && a.version === version && a.state === state),
      timeoutMs,
      20,
    );

  const stack: Stack = {
    dir,
    signer,
    signingKeyFile: keyFile,
    s3,
    get trainer() {
      if (trainer === undefined) throw new Error("trainer not started");
      return trainer;
    },
    generators,
    startGenerator,
    startTrainer,
    publish: (run, files) => {
      const form = new FormData();
      form.set("adapter_config.json", new Blob([files.config]), "adapter_config.json");
      form.set("adapter_model.safetensors", new Blob([files.weights]), "adapter_model.safetensors");
      return fetch(`${stack.trainer.url}/v1/runs/${run}/adapters`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: form,
      });
    },
    adapters,
    waitActive: (g, run, version, timeoutMs) => waitState(g, run, version, "active", timeoutMs),
    waitState,
    stop: async () => {
      await Promise.all([trainer?.stop(), ...generators.map((g) => g.stop())]);
      await s3.stop();
      // The bucket holds every published blob: a handoff bench leaves gigabytes behind otherwise.
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** A stack whose one generator serves llama-tiny artifacts built for it (fp32); `stop` also removes them. */
export async function startServingStack(
  generatorEnv: Record<string, string> = {},
): Promise<{ stack: Stack; generator: Service; modelDir: string }> {
  const modelDir = mkdtempSync(join(tmpdir(), "loracast-model-"));
  const built = await buildArtifacts({
    checkpointDir: join(fixture("llama-tiny"), "base"),
    outDir: modelDir,
    quant: { kind: "fp32" },
  });
  if (!built.ok) throw built.error;
  const stack = await startStack({
    generators: 1,
    generatorEnv: { GENERATOR_MODEL_DIR: modelDir, GENERATOR_BASE_CONFIG: "", ...generatorEnv },
    trainerEnv: { TRAINER_BASE_CONFIG: LLAMA_CONFIG },
  });
  const stop = stack.stop;
  stack.stop = async () => {
    await stop();
    rmSync(modelDir, { recursive: true, force: true });
  };
  return { stack, generator: stack.generators[0] as Service, modelDir };
}

/**
 * `g`'s `adapter activated` log line for run@version (past or within `timeoutMs`), so a benchmark
 * waits without polling and stealing CPU from the fleet; a version that failed verification there
 * throws with its reason.
 */
export async function activationLine(
  g: Service,
  run: string,
  version: number,
  timeoutMs = 120_000,
): Promise<LogLine> {
  const line = await g.waitForLog(
    (l) =>
      (l.msg === "adapter activated" || l.msg === "adapter failed verification") &&
      l.run === run &&
      l.version === version,
    timeoutMs,
  );
  if (line.msg !== "adapter activated")
    throw new Error(`${g.name}: ${formatVersionRef(run, version)} failed: ${String(line.reason)}`);
  return line;
}
