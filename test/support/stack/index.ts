/**
 * How a stack's processes are wired together, for the local stack (`npm start`) and the test
 * stacks alike: which port each service takes, the environment that points a service at the
 * embedded S3 server, and the webhook, signing and token settings that join a trainer to its
 * generators. The variables are the services' own (`services/*\/src/env.ts`).
 */

/** The stack's ports: S3 takes the base port, the trainer the next, generators the ones after. */
export interface StackPorts {
  s3: number;
  trainer: number;
  generators: number[];
}

/** The ports a stack started at `basePort` with `generators` generators (default 2) listens on. */
export function stackPorts(basePort: number, generators = 2): StackPorts {
  return {
    s3: basePort,
    trainer: basePort + 1,
    generators: Array.from({ length: generators }, (_, i) => basePort + 2 + i),
  };
}

/** The embedded S3 server's fixed credentials (s3rver accepts these and no others). */
export const S3_LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

/** The environment of the embedded S3 server (`s3-local`): its port (0: any free one), data dir and bucket. */
export function s3LocalEnv(port: number, dir: string, bucket: string): Record<string, string> {
  return { S3_LOCAL_PORT: String(port), S3_LOCAL_DIR: dir, S3_BUCKET: bucket };
}

/** The `S3_*` variables that point a service at the embedded S3 server at `url`, under `prefix`. */
export function s3ClientEnv(url: string, bucket: string, prefix: string): Record<string, string> {
  return {
    S3_ENDPOINT: url,
    S3_ACCESS_KEY_ID: S3_LOCAL_CREDENTIALS.accessKeyId,
    S3_SECRET_ACCESS_KEY: S3_LOCAL_CREDENTIALS.secretAccessKey,
    S3_BUCKET: bucket,
    S3_PREFIX: prefix,
  };
}

/** What joins a generator to the stack's trainer: its name and port, the webhook secret, the trainer's public key. */
export interface GeneratorWiring {
  name: string;
  /** 0 takes any free port. */
  port: number;
  /** The Standard Webhooks secret (`whsec_…`) the trainer signs notifications with. */
  webhookSecret: string;
  /** The trainer's manifest signing key, public half (raw 32 bytes, base64). */
  publicKey: string;
}

/** A generator's environment for `wiring` (the S3, model and tuning variables are the caller's). */
export function generatorEnv(wiring: GeneratorWiring): Record<string, string> {
  return {
    GENERATOR_NAME: wiring.name,
    GENERATOR_PORT: String(wiring.port),
    WEBHOOK_SECRETS: wiring.webhookSecret,
    MANIFEST_PUBLIC_KEYS: wiring.publicKey,
  };
}

/** What joins a trainer to the stack: its port, data dir, bearer token, signing key and generators. */
export interface TrainerWiring {
  /** 0 takes any free port. */
  port: number;
  dataDir: string;
  /** The bearer token of the trainer API. */
  apiToken: string;
  /**
   * The PEM of the key it signs manifests with (its public half is each generator's `publicKey`);
   * absent, the trainer makes one in its data dir (`signing-key.pem`).
   */
  signingKeyFile?: string;
  /** The Standard Webhooks secret it signs notifications with. */
  webhookSecret: string;
  /** The generators it notifies, by base URL. */
  generators: readonly { url: string }[];
}

/**
 * A trainer's environment for `wiring` (the S3 and model variables are the caller's). Egress to
 * private addresses is allowed: every service of a stack, and any reward server beside it, is on
 * loopback.
 */
export function trainerEnv(wiring: TrainerWiring): Record<string, string> {
  return {
    TRAINER_PORT: String(wiring.port),
    TRAINER_DATA_DIR: wiring.dataDir,
    TRAINER_API_TOKEN: wiring.apiToken,
    TRAINER_EGRESS_ALLOW_PRIVATE: "true",
    ...(wiring.signingKeyFile === undefined ? {} : { TRAINER_SIGNING_KEY_FILE: wiring.signingKeyFile }),
    WEBHOOK_SECRET: wiring.webhookSecret,
    WEBHOOK_SUBSCRIBERS: webhookSubscribers(wiring.generators),
  };
}

/** A generator's webhook endpoint (`POST /v1/webhooks/adapters`) under its base URL. */
export function webhookUrl(generatorUrl: string): string {
  return `${generatorUrl}/v1/webhooks/adapters`;
}

/** `WEBHOOK_SUBSCRIBERS` for these generators: their webhook endpoints, comma-separated. */
export function webhookSubscribers(generators: readonly { url: string }[]): string {
  return generators.map((g) => webhookUrl(g.url)).join(",");
}
