/**
 * Secrets and egress on a real trainer with a base:
 * - credentials in configured URLs (`user:pass@`, `?api_key=`) never appear in an API response
 *   (runs, run events, subscriptions, errors that echo the URL) nor in a log line;
 * - run configs and subscriptions are read with the token only;
 * - outbound URLs pass the egress policy: other schemes, link-local and metadata addresses are
 *   refused naming the field, loopback and private ones unless TRAINER_EGRESS_ALLOW_PRIVATE, and a
 *   hostname that resolves to a refused address is refused when the trainer connects.
 */
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually } from "@loracast/dev-support/supervisor";
import {
  type RunInfo,
  runInfoSchema,
  runListSchema,
  subscriptionListSchema,
  trainerErrorBodySchema,
} from "@loracast/shared/trainer-api";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson, readRunEvents } from "../helpers/training.ts";

const SECRETS = ["hunter2", "sk-reward-secret-42", "subscriber-pass", "sub-token-99"];
const auth = { authorization: `Bearer ${TOKEN}` };
const NO_OR_WRONG_TOKEN: Record<string, string>[] = [{}, { authorization: "Bearer wrong-token-0123456789" }];

/** The run's info once it is no longer running. */
function ended(stack: Stack, run: string): Promise<RunInfo> {
  return eventually(
    `${run} ends`,
    async () => {
      const r = runInfoSchema.parse(
        await (await fetch(`${stack.trainer.url}/v1/runs/${run}`, { headers: auth })).json(),
      );
      return r.status === "running" ? undefined : r;
    },
    120_000,
  );
}

/**
 * A reward endpoint on all interfaces that answers 500 (`/redirect…`: a redirect to the metadata
 * address) and counts its requests; `lastAuthorization` is that of the last reward call (not `/hook`).
 */
async function rewardServer(): Promise<{
  server: Server;
  port: number;
  hits: () => number;
  lastAuthorization: () => string | undefined;
}> {
  let hits = 0;
  let lastAuthorization: string | undefined;
  const server = createServer((req, res) => {
    hits++;
    // The subscriber test points webhooks at this server too: only reward calls count here.
    if (req.url?.startsWith("/hook") !== true) lastAuthorization = req.headers.authorization;
    if (req.url?.startsWith("/redirect") === true) {
      res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end();
      return;
    }
    res.writeHead(500).end("down");
  });
  await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    hits: () => hits,
    lastAuthorization: () => lastAuthorization,
  };
}

function assertNoSecret(text: string, where: string): void {
  for (const s of SECRETS)
    assert.ok(!text.includes(s), `${where} shows the credential ${s}: ${text.slice(0, 400)}`);
}

describe("secrets and egress", () => {
  let work: string;
  let modelDir: string;
  let dataset: string;
  let reward: Awaited<ReturnType<typeof rewardServer>>;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-egress-"));
    ({ modelDir, dataset } = await buildTrainingFixture(work));
    reward = await rewardServer();
  });
  after(async () => {
    await new Promise((r) => reward?.server.close(r));
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  describe("with private egress allowed (as the local stack runs)", () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({ trainerEnv: { TRAINER_MODEL_DIR: modelDir, TRAINER_THREADS: "1" } });
    });
    after(async () => stack?.stop());

    it("credentials in reward and subscriber URLs are redacted in every response, event and log line", async () => {
      const url = `http://user:hunter2@127.0.0.1:${reward.port}/score?api_key=sk-reward-secret-42&model=a`;
      const config = {
        ...grpoRun("leaky", dataset, 2),
        rewards: [{ type: "http", url, retries: 0, onError: "fail" }],
      };
      const created = await postJson(`${stack.trainer.url}/v1/runs`, config);
      const createdText = await created.text();
      assert.equal(created.status, 201, createdText);
      assertNoSecret(createdText, "POST /v1/runs");
      assert.match(createdText, /api_key=\*\*\*&model=a/, "the URL stays readable, its credential redacted");

      const sub = await postJson(`${stack.trainer.url}/v1/subscriptions`, {
        url: `http://hook:subscriber-pass@127.0.0.1:${reward.port}/hook?token=sub-token-99`,
      });
      const subText = await sub.text();
      assert.equal(sub.status, 201, subText);
      assertNoSecret(subText, "POST /v1/subscriptions");

      const info = await ended(stack, "leaky");
      assert.equal(info.status, "failed");
      assert.match(info.error ?? "", /reward endpoint http:\/\/\*\*\*@127\.0\.0\.1.*: HTTP 500/);
      assert.equal(
        reward.lastAuthorization(),
        `Basic ${Buffer.from("user:hunter2").toString("base64")}`,
        "the URL's userinfo reached the endpoint as Basic credentials",
      );

      for (const path of ["/v1/runs", "/v1/runs/leaky", "/v1/subscriptions"]) {
        const res = await fetch(`${stack.trainer.url}${path}`, { headers: auth });
        assert.equal(res.status, 200, path);
        assertNoSecret(await res.text(), `GET ${path}`);
      }
      const events = await readRunEvents(`${stack.trainer.url}/v1/runs/leaky/events`);
      assert.ok(events.some((e) => e.data.type === "status"));
      assertNoSecret(JSON.stringify(events), "run events");
      assertNoSecret(stack.trainer.logs.map((l) => JSON.stringify(l)).join("\n"), "trainer logs");
    });

    it("a reward endpoint that redirects to the metadata address is refused at the redirect", async () => {
      const res = await postJson(`${stack.trainer.url}/v1/runs`, {
        ...grpoRun("redirected", dataset, 2),
        rewards: [
          { type: "http", url: `http://127.0.0.1:${reward.port}/redirect`, retries: 0, onError: "fail" },
        ],
      });
      assert.equal(res.status, 201, await res.text());
      const info = await ended(stack, "redirected");
      assert.equal(info.status, "failed");
      assert.match(
        info.error ?? "",
        /host 169\.254\.169\.254: 169\.254\.169\.254 is a link-local or cloud-metadata address/,
      );
    });

    it("refuses the cloud metadata endpoints even so (AWS IPv6, Alibaba, Azure wireserver)", async () => {
      for (const url of ["http://[fd00:ec2::254]/", "http://100.100.100.200/", "http://168.63.129.16/"]) {
        const sub = await postJson(`${stack.trainer.url}/v1/subscriptions`, { url });
        assert.match(await sub.text(), /"message":"url: .*cloud-metadata address/, url);
        assert.equal(sub.status, 400, url);
      }
    });

    it("run configs and subscriptions are read with the token only", async () => {
      for (const path of ["/v1/runs", "/v1/runs/leaky", "/v1/subscriptions"]) {
        for (const headers of NO_OR_WRONG_TOKEN) {
          const res = await fetch(`${stack.trainer.url}${path}`, { headers });
          assert.equal(res.status, 401, `GET ${path} with ${JSON.stringify(headers)}`);
          assert.equal(trainerErrorBodySchema.parse(await res.json()).error.code, "unauthorized");
        }
      }
      for (const path of ["/healthz", "/metrics"]) {
        assert.equal((await fetch(`${stack.trainer.url}${path}`)).status, 200, path);
      }
    });
  });

  describe("without private egress (the default)", () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({
        trainerEnv: {
          TRAINER_MODEL_DIR: modelDir,
          TRAINER_THREADS: "1",
          TRAINER_EGRESS_ALLOW_PRIVATE: "false",
        },
      });
    });
    after(async () => stack?.stop());

    const refusedUrls = [
      "file:///etc/passwd",
      "data:text/plain,hi",
      "javascript:alert(1)",
      "ftp://example.com/x",
      "http://169.254.169.254/latest/meta-data/",
      "http://0251.0376.0251.0376/",
      "http://[fe80::1]/x",
      "http://[fd00:ec2::254]/latest",
      "http://[::ffff:169.254.169.254]/",
      "http://127.0.0.1:9/hook",
      "http://localhost:9/hook",
      "http://10.1.2.3/hook",
      "http://192.168.0.10/hook",
    ];

    it("refuses other schemes, link-local, metadata, loopback and private URLs, naming the field", async () => {
      for (const url of refusedUrls) {
        const sub = await postJson(`${stack.trainer.url}/v1/subscriptions`, { url });
        const subText = await sub.text();
        assert.equal(sub.status, 400, `subscription ${url}: ${subText}`);
        assert.match(subText, /"message":"url: /, url);

        const rewardRun = await postJson(`${stack.trainer.url}/v1/runs`, {
          ...grpoRun("refused-reward", dataset, 2),
          rewards: [
            { type: "regex", pattern: "[0-9]" },
            { type: "http", url },
          ],
        });
        const rewardText = await rewardRun.text();
        assert.equal(rewardRun.status, 400, `reward ${url}: ${rewardText}`);
        assert.match(rewardText, /"message":"rewards\.1\.url: /, url);

        const fleetRun = await postJson(`${stack.trainer.url}/v1/runs`, {
          ...grpoRun("refused-fleet", dataset, 2),
          generators: { urls: ["https://generator.example.com", url] },
        });
        const fleetText = await fleetRun.text();
        assert.equal(fleetRun.status, 400, `generator ${url}: ${fleetText}`);
        assert.match(fleetText, /"message":"generators\.urls\.1: /, url);
      }
      const listed = subscriptionListSchema.parse(
        await (await fetch(`${stack.trainer.url}/v1/subscriptions`, { headers: auth })).json(),
      );
      assert.deepEqual(listed.data, [], "no refused subscription was kept");
      const runs = runListSchema.parse(
        await (await fetch(`${stack.trainer.url}/v1/runs`, { headers: auth })).json(),
      );
      assert.deepEqual(runs.runs, [], "no run was created for a refused URL");
    });

    it("refuses a hostname that resolves to a refused address when it connects", async () => {
      const name = hostname();
      const { address } = await lookup(name);
      assert.ok(
        /^(127\.|10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|::1$|f[cd])/.test(address),
        `this test needs the machine's hostname (${name}) to resolve to a loopback or private address, got ${address}`,
      );
      const before = reward.hits();
      const res = await postJson(`${stack.trainer.url}/v1/runs`, {
        ...grpoRun("rebound", dataset, 2),
        rewards: [{ type: "http", url: `http://${name}:${reward.port}/score`, retries: 0, onError: "fail" }],
      });
      assert.equal(res.status, 201, await res.text());
      const info = await ended(stack, "rebound");
      assert.equal(info.status, "failed");
      assert.match(
        info.error ?? "",
        new RegExp(`host ${name} resolves to ${address.replaceAll(".", "\\.")}`),
      );
      assert.equal(reward.hits(), before, "the reward endpoint was never reached");
    });
  });
});
