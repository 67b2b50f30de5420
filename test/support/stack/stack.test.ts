import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generatorEnvSchema } from "../../../services/generator/src/env.ts";
import { envSchema as s3LocalEnvSchema } from "../../../services/s3-local/src/env.ts";
import { envSchema as trainerEnvSchema } from "../../../services/trainer/src/env.ts";
import {
  generatorEnv,
  s3ClientEnv,
  s3LocalEnv,
  stackPorts,
  trainerEnv,
  webhookSubscribers,
} from "./index.ts";

const SECRET = `whsec_${Buffer.from("loracast-test-webhook-secret-32b").toString("base64")}`;
const PUBLIC_KEY = Buffer.alloc(32, 7).toString("base64");
const s3 = s3ClientEnv("http://127.0.0.1:9000", "loracast", "runs-a");

describe("stack wiring", () => {
  it("puts S3 on the base port, the trainer on the next, the generators after it", () => {
    assert.deepEqual(stackPorts(9000, 3), { s3: 9000, trainer: 9001, generators: [9002, 9003, 9004] });
    assert.deepEqual(stackPorts(9100).generators, [9102, 9103]);
  });

  it("gives the embedded S3 server an environment it parses", () => {
    const env = s3LocalEnvSchema.parse(s3LocalEnv(0, "/data/s3", "loracast"));
    assert.equal(env.S3_LOCAL_PORT, 0);
    assert.equal(env.S3_LOCAL_DIR, "/data/s3");
    assert.equal(env.S3_BUCKET, "loracast");
  });

  it("gives a generator an environment its schema parses, trusting the trainer's key", () => {
    const env = generatorEnvSchema.parse({
      ...s3,
      ...generatorEnv({ name: "g0", port: 0, webhookSecret: SECRET, publicKey: PUBLIC_KEY }),
      GENERATOR_BASE_CONFIG: "/base/config.json",
    });
    assert.equal(env.GENERATOR_NAME, "g0");
    assert.equal(env.S3_ENDPOINT, "http://127.0.0.1:9000");
    assert.equal(env.S3_PREFIX, "runs-a");
    assert.deepEqual(env.WEBHOOK_SECRETS, [SECRET]);
    assert.equal(String(env.MANIFEST_PUBLIC_KEYS), String([PUBLIC_KEY]));
  });

  it("gives a trainer an environment its schema parses, notifying every generator's webhook", () => {
    const generators = [{ url: "http://127.0.0.1:9002" }, { url: "http://127.0.0.1:9003" }];
    const env = trainerEnvSchema.parse({
      ...s3,
      ...trainerEnv({
        port: 9001,
        dataDir: "/data/trainer",
        apiToken: "local-dev-token-change-me",
        signingKeyFile: "/data/keys/trainer.pem",
        webhookSecret: SECRET,
        generators,
      }),
    });
    assert.equal(env.TRAINER_PORT, 9001);
    assert.equal(env.TRAINER_SIGNING_KEY_FILE, "/data/keys/trainer.pem");
    assert.equal(env.TRAINER_EGRESS_ALLOW_PRIVATE, true);
    assert.deepEqual(env.WEBHOOK_SUBSCRIBERS, [
      "http://127.0.0.1:9002/v1/webhooks/adapters",
      "http://127.0.0.1:9003/v1/webhooks/adapters",
    ]);
    assert.equal(webhookSubscribers([]), "");
    const own = trainerEnv({ port: 0, dataDir: "/d", apiToken: "t", webhookSecret: SECRET, generators: [] });
    assert.equal(own.TRAINER_SIGNING_KEY_FILE, undefined);
    assert.equal(own.WEBHOOK_SUBSCRIBERS, "");
  });
});
