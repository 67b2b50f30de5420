/**
 * Journey: a user runs the demo, stops it, and starts the stack again without the demo on the same
 * data dir. Generators that follow every run (no GENERATOR_RUNS) must find the demo's run in the
 * store by themselves and serve its newest version, and so must a generator started on its own.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { generatorEnv, s3ClientEnv, stackPorts } from "@loracast/dev-support/stack";
import { eventually, type Service, startService } from "@loracast/dev-support/supervisor";
import {
  type AdapterList,
  adapterListSchema,
  completionSchema,
  modelListSchema,
} from "@loracast/shared/generator-api";
import { formatVersionRef } from "@loracast/shared/manifest";
import { loadOrCreateSigner } from "@loracast/shared/signing";
import { AdapterStore, S3ObjectStore, s3EnvSchema, s3SettingsFromEnv } from "@loracast/shared/store";
import type { z } from "zod";
import { freePortRange, type LocalStackRun, startLocalStack, waitGroupGone } from "../helpers/local-stack.ts";

const RUN = "digits-1";
const READY = /^Ctrl-C stops everything\.$/;
/** The local stack's webhook secret (services/local-stack/src/env.ts), which a standalone generator also takes. */
const SECRET = `whsec_${Buffer.from("loracast-local-dev-secret-32bytes").toString("base64")}`;

/** GET `url`'s JSON, parsed with its contract. */
const json = async <T>(url: string, schema: z.ZodType<T>): Promise<T> =>
  schema.parse(await (await fetch(url)).json());

/** Stops `npm start` as a terminal's Ctrl-C does, and makes sure nothing of it is left. */
async function stop(stack: LocalStackRun): Promise<void> {
  await stack.interrupt("SIGINT", 60_000).catch(() => undefined);
  if ((await waitGroupGone(stack.pgid, 30_000)).length > 0) stack.killGroup();
  await waitGroupGone(stack.pgid, 10_000);
}

/** Waits until `generatorUrl` serves `version` of the demo run as active (reconcile runs every 3 s). */
function waitServing(generatorUrl: string, version: number): Promise<AdapterList> {
  return eventually(
    `${generatorUrl} to activate ${formatVersionRef(RUN, version)}`,
    async () => {
      const adapters = await json(`${generatorUrl}/v1/adapters`, adapterListSchema);
      if (adapters.active[RUN]?.version === version) return adapters;
      // eventually() reports the last error on timeout: what the generator served instead.
      throw new Error(`GET /v1/adapters: ${JSON.stringify(adapters)}`);
    },
    45_000,
    500,
  );
}

describe("journey: generators discover the runs already in the store", () => {
  it("after a demo and a restart without it, every generator serves the demo run's newest version", {
    timeout: 900_000,
  }, async () => {
    const data = mkdtempSync(join(tmpdir(), "loracast-discovery-"));
    const stacks: LocalStackRun[] = [];
    let standalone: Service | undefined;
    try {
      const env = { LORACAST_DATA_DIR: data, LORACAST_DEMO_STEPS: "5" };
      const demo = startLocalStack({ ...env, LORACAST_BASE_PORT: String(await freePortRange(4)) });
      stacks.push(demo);
      // Let the short demo finish, then stop it as a user would.
      await demo.waitForLine(READY, 600_000);
      const summary = await demo.waitForLine(/^\s+versions\s+\d+ published \(v\d+…v\d+\)/);
      const newest = Number(/…v(\d+)\)/.exec(summary)?.[1]);
      assert.ok(newest >= 2, summary);
      await stop(demo);

      const base = await freePortRange(4, process.pid + 1);
      const again = startLocalStack({ ...env, LORACAST_DEMO: "false", LORACAST_BASE_PORT: String(base) });
      stacks.push(again);
      await again.waitForLine(READY, 300_000);
      const ports = stackPorts(base);
      for (const port of ports.generators) {
        const url = `http://127.0.0.1:${port}`;
        const adapters = await waitServing(url, newest);
        const models = await json(`${url}/v1/models`, modelListSchema);
        assert.ok(
          models.data.some((m) => m.id === RUN),
          `/v1/models lists ${RUN}: ${JSON.stringify(models)}`,
        );
        const res = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: RUN, prompt: "q5:", max_tokens: 4 }),
        });
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(res.headers.get("x-loracast-adapter-version"), String(newest));
        assert.equal(res.headers.get("x-loracast-adapter-sha256"), adapters.active[RUN]?.sha256);
        assert.equal(completionSchema.parse(await res.json()).model, formatVersionRef(RUN, newest));
      }

      // The store as the demo left it, read through the services' own client.
      const objects = new S3ObjectStore(
        s3SettingsFromEnv(
          s3EnvSchema.parse(s3ClientEnv(`http://127.0.0.1:${ports.s3}`, "loracast", "loracast")),
        ),
      );
      try {
        const store = new AdapterStore(objects);
        assert.deepEqual(await store.listRuns(), [RUN]);
        assert.equal(await store.latestVersion(RUN), newest);
        assert.equal((await store.currentVersion(RUN)).current, newest);
        assert.ok((await objects.listSegments(`runs/${RUN}/`)).includes("versions"));
      } finally {
        objects.client.destroy();
      }

      // The stack's trainer key (made by `npm start`): a generator trusts only what it signed.
      const signer = await loadOrCreateSigner(join(data, "keys", "manifest-signing.pem"));
      assert.ok(signer.ok);
      standalone = await startService(
        "generator",
        {
          ...s3ClientEnv(`http://127.0.0.1:${ports.s3}`, "loracast", "loracast"),
          ...generatorEnv({
            name: "standalone",
            port: 0,
            webhookSecret: SECRET,
            publicKey: signer.value.publicKey,
          }),
          GENERATOR_MODEL_DIR: join(data, "demo-model"),
          GENERATOR_MODEL_NAME: "demo-base",
        },
        { name: "standalone" },
      );
      await waitServing(standalone.url, newest);
    } finally {
      await standalone?.stop();
      for (const s of stacks) await stop(s);
      rmSync(data, { recursive: true, force: true });
    }
  });
});
