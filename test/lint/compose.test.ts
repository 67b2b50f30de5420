/**
 * infra/compose.yaml against what it runs (no Docker here to run it): the file parses as YAML, each
 * loracast service's environment passes that service's own env schema (`services/*\/src/env.ts`, the
 * one `main.ts` parses at start), the model the trainer and generators load is the one the
 * demo-model service builds into the volume they mount, webhooks go to generators of this file on
 * their ports, the signing key is the mounted secret, and images and build arguments are the ones
 * infra/images/build.sh makes. The container smoke test (test/containers/smoke.ts) runs the same
 * images with the same settings.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "@loracast/dev-support/fixtures";
import { executionProviderSchema } from "@loracast/shared/runtime";
import { Signer } from "@loracast/shared/signing";
import { parse } from "yaml";
import { generatorEnvSchema } from "../../services/generator/src/env.ts";
import { envSchema as trainerEnvSchema } from "../../services/trainer/src/env.ts";

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  secrets?: string[];
  read_only?: boolean;
  profiles?: string[];
}
interface Compose {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}

const INFRA = join(ROOT, "infra");
const publicKey = Signer.generate().publicKey;
// Compose substitutes ${VAR:?message} from the shell; the README's key step exports this one.
const text = readFileSync(join(INFRA, "compose.yaml"), "utf8").replace(
  /\$\{MANIFEST_PUBLIC_KEYS:\?[^}]*\}/g,
  publicKey,
);
const compose = parse(text, { merge: true, maxAliasCount: 100 }) as Compose;
const ours = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith("localhost/loracast-"));
const byImage = (kind: string) => ours.filter(([, s]) => s.image?.startsWith(`localhost/loracast-${kind}:`));
const running = (kind: string) => byImage(kind).filter(([, s]) => s.command === undefined);

/** Where volume `name` is mounted in `s`, or undefined. */
function mountOf(s: Service, name: string): string | undefined {
  return s.volumes?.find((v) => v.split(":")[0] === name)?.split(":")[1];
}

describe("infra/compose.yaml", () => {
  it("runs a trainer, a demo-model job and at least two generators, all read-only, on build.sh's images", () => {
    assert.equal(running("trainer").length, 1);
    assert.equal(byImage("trainer").length, 2);
    assert.ok(running("generator").filter(([, s]) => s.profiles === undefined).length >= 2);
    for (const [name, s] of ours) {
      assert.equal(s.read_only, true, `${name} read_only`);
      assert.match(s.image ?? "", /^localhost\/loracast-(trainer|generator):dev(-cuda|-webgpu)?$/, name);
      if (s.build === undefined) continue;
      assert.ok(
        existsSync(join(INFRA, s.build.context, s.build.dockerfile)),
        `${name}: ${s.build.dockerfile}`,
      );
      const provider = executionProviderSchema.parse(s.build.args?.EXECUTION_PROVIDER);
      // build.sh tags a non-cpu provider's image dev-<provider>.
      assert.equal(s.image?.endsWith(provider === "cpu" ? ":dev" : `:dev-${provider}`), true, name);
    }
  });

  it("gives each loracast service an environment its own env schema accepts", () => {
    for (const [name, s] of running("trainer")) {
      const parsed = trainerEnvSchema.safeParse(s.environment);
      assert.ok(parsed.success, `${name}: ${JSON.stringify(parsed.error?.issues)}`);
    }
    for (const [name, s] of running("generator")) {
      const parsed = generatorEnvSchema.safeParse(s.environment);
      assert.ok(parsed.success, `${name}: ${JSON.stringify(parsed.error?.issues)}`);
      assert.deepEqual(parsed.data?.MANIFEST_PUBLIC_KEYS, [publicKey], name);
    }
  });

  it("serves and trains the model the demo-model job builds into the volume they mount", () => {
    const [[, job] = ["", {} as Service]] = byImage("trainer").filter(([, s]) => s.command !== undefined);
    const built = job.command?.at(-1) ?? "";
    const volume = job.volumes?.map((v) => v.split(":")).find(([, target]) => built.startsWith(`${target}/`));
    assert.ok(volume !== undefined && volume[0] !== undefined && volume[0] in compose.volumes, built);
    const [name = "", target = ""] = volume;
    for (const [service, s] of [...running("trainer"), ...running("generator")]) {
      const dir = s.environment?.TRAINER_MODEL_DIR ?? s.environment?.GENERATOR_MODEL_DIR;
      assert.equal(dir, built, `${service} loads another model`);
      assert.equal(mountOf(s, name), target, `${service} does not mount ${name} at ${target}`);
    }
  });

  it("sends webhooks to this file's generators on their ports, and signs with the mounted secret", () => {
    const [[, trainer] = ["", {} as Service]] = running("trainer");
    const env = trainerEnvSchema.parse(trainer.environment);
    const targets = env.WEBHOOK_SUBSCRIBERS.map((u) => new URL(u));
    const always = running("generator").filter(([, s]) => s.profiles === undefined);
    assert.deepEqual(targets.map((u) => u.hostname).sort(), always.map(([n]) => n).sort());
    for (const u of targets) {
      const g = compose.services[u.hostname];
      assert.equal(u.port, g?.environment?.GENERATOR_PORT, u.href);
      assert.equal(u.pathname, "/v1/webhooks/adapters");
    }
    const [secret] = trainer.secrets ?? [];
    assert.equal(env.TRAINER_SIGNING_KEY_FILE, `/run/secrets/${secret}`);
    assert.ok(secret !== undefined && compose.secrets[secret]?.file !== undefined);
  });
});
