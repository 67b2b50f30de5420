/**
 * DNS fan-out of webhooks as replicas come and go, with real processes: the trainer's one
 * subscriber is `dns+http://generators.loracast.test:<port>/…`, a DNS server on loopback plays the
 * cluster DNS of a headless Service (one A record per ready pod), and each generator listens on its
 * own loopback address with the same port, as pods do. Generators reconcile with the store only
 * every 10 minutes here, so a version that goes active within seconds came by webhook.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { fleetSchema } from "@loracast/shared/trainer-api";
import { randomAdapter } from "../helpers/adapters.ts";
import { startDnsServer } from "../helpers/dns-server.ts";
import { canListen } from "../helpers/local-stack.ts";
import { startStack, TOKEN } from "../helpers/stack.ts";

const NAME = "generators.loracast.test";
const HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"] as const;

/** A port free on every one of `HOSTS` (each replica listens on the same port, as pods do). */
async function sharedPort(): Promise<number> {
  let x = process.pid;
  for (let attempt = 0; attempt < 100; attempt++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const port = 20_000 + (x % 40_000);
    let free = true;
    for (const h of HOSTS) free &&= await canListen(port, h);
    if (free) return port;
  }
  throw new Error("no port free on all of the test's loopback addresses");
}

/** One sample of the trainer's `/metrics`, by metric name (unlabelled metrics only). */
async function trainerMetrics(trainer: Service): Promise<Map<string, number>> {
  const text = await (await fetch(`${trainer.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^(loracast_[a-z_]+) (\d+(?:\.\d+)?)$/gm)) out.set(m[1] ?? "", Number(m[2]));
  return out;
}

describe("webhook fan-out through a headless Service's DNS name", () => {
  it("reaches the replicas present at each publish, and stops retrying a replica that left", async () => {
    const dns = await startDnsServer();
    const port = await sharedPort();
    const stack = await startStack({
      trainerEnv: {
        WEBHOOK_SUBSCRIBERS: `dns+http://${NAME}:${port}/v1/webhooks/adapters`,
        TRAINER_DNS_SERVERS: dns.address,
      },
      generatorEnv: { RECONCILE_INTERVAL_MS: "600000" },
    });
    const replicas = new Map<string, Service>();
    const started: Service[] = [];
    /** Starts a replica on `host` and, once it is ready, puts it in the name (as readiness does). */
    const up = async (host: string): Promise<Service> => {
      const g = await stack.startGenerator(`g-${host}`, { GENERATOR_HOST: host }, port);
      started.push(g);
      replicas.set(host, g);
      dns.set(NAME, [...replicas.keys()]);
      return g;
    };
    const publish = async (version: number): Promise<void> => {
      const res = await stack.publish("fan", randomAdapter(LLAMA_CONFIG, version, 2, ["q_proj"]));
      assert.equal(res.status, 201, await res.text());
    };
    const byWebhook = async (g: Service, version: number): Promise<void> => {
      const row = await stack.waitActive(g, "fan", version, 15_000);
      assert.equal(row.trigger, "webhook", `${g.name} got fan@${version} by ${row.trigger}`);
    };
    try {
      const [a, b] = [await up(HOSTS[0]), await up(HOSTS[1])];
      await publish(1);
      await Promise.all([byWebhook(a, 1), byWebhook(b, 1)]);

      // A replica comes, one goes (killed, and gone from the name): v2 reaches exactly those present.
      const c = await up(HOSTS[2]);
      await b.kill();
      replicas.delete(HOSTS[1]);
      dns.set(NAME, [...replicas.keys()]);
      await publish(2);
      await Promise.all([byWebhook(a, 2), byWebhook(c, 2)]);
      await eventually("v2's deliveries done", async () =>
        (await trainerMetrics(stack.trainer)).get("loracast_webhooks_pending") === 0 ? true : undefined,
      );
      const afterV2 = await trainerMetrics(stack.trainer);
      assert.equal(afterV2.get("loracast_webhooks_delivered_total"), 4, "v1 to a and b, v2 to a and c");
      assert.equal(
        afterV2.get("loracast_webhook_failed_attempts_total"),
        0,
        "no delivery went to the gone b",
      );
      // The trainer's fleet view asks the replicas the name has now, not the name.
      const fleet = fleetSchema.parse(
        await (
          await fetch(`${stack.trainer.url}/v1/fleet`, { headers: { authorization: `Bearer ${TOKEN}` } })
        ).json(),
      );
      assert.deepEqual(
        fleet.generators.map((g) => [g.url, g.reach, g.active.fan?.version]),
        [
          [`http://${HOSTS[0]}:${port}`, "ok", 2],
          [`http://${HOSTS[2]}:${port}`, "ok", 2],
        ],
      );

      // A replica dies before the name drops it: its delivery fails and is retried, until the name
      // drops it; then the delivery is dropped, and nothing is retried any more.
      await c.kill();
      await publish(3);
      await byWebhook(a, 3);
      await eventually("attempts at the dead replica", async () =>
        ((await trainerMetrics(stack.trainer)).get("loracast_webhook_failed_attempts_total") ?? 0) > 0
          ? true
          : undefined,
      );
      replicas.delete(HOSTS[2]);
      dns.set(NAME, [...replicas.keys()]);
      const dropped = await eventually("the dead replica's delivery dropped", async () => {
        const m = await trainerMetrics(stack.trainer);
        return m.get("loracast_webhooks_dropped_total") === 1 && m.get("loracast_webhooks_pending") === 0
          ? m
          : undefined;
      });
      // Longer than the outbox's sweep interval (2 s): a delivery still pending would be tried again.
      await new Promise((r) => setTimeout(r, 3000));
      const later = await trainerMetrics(stack.trainer);
      assert.equal(
        later.get("loracast_webhook_failed_attempts_total"),
        dropped.get("loracast_webhook_failed_attempts_total"),
        "no attempt after the drop",
      );
      assert.equal(later.get("loracast_webhooks_dead_total"), 0);

      // The replica that left comes back on its old address: it reconciles to v3 when it starts,
      // and the next version reaches it by webhook again.
      const b2 = await up(HOSTS[1]);
      const caughtUp = await stack.waitActive(b2, "fan", 3, 15_000);
      assert.equal(caughtUp.trigger, "reconcile");
      await publish(4);
      await Promise.all([byWebhook(a, 4), byWebhook(b2, 4)]);
      assert.ok(dns.queries > 0);
    } finally {
      await Promise.all(started.map((g) => g.stop()));
      await stack.stop();
      await dns.stop();
    }
  });
});
