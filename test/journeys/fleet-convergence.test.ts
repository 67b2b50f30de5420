/**
 * The fleet's kill case (issue 20): half of a 16-generator fleet is SIGKILLed while the trainer
 * keeps publishing, restarted on the same ports, and every generator converges to the newest
 * version with its sha256. 16 real generator processes (about 140 MB each, 2.2 GB together) start
 * in about a minute on a 2-core CI machine; 8 killed is the number, and half the fleet, so
 * no version reaches the restarted ones except through their own start-up reconcile and the
 * trainer's retried webhooks. `npm run bench:fleet` runs the same case at 64.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { publishResultSchema, runVersionsSchema } from "@loracast/shared/trainer-api";
import { adapterOfSize, distinctWeights } from "../helpers/adapters.ts";
import { type Fleet, startFleet, waitConverged } from "../helpers/fleet.ts";

const GENERATORS = 16;
const KILLED = 8;
/** How long the fleet may take to converge once the last version is published. */
const CONVERGE_MS = 60_000;

describe("a 16-generator fleet with 8 killed mid-run", { timeout: 600_000 }, () => {
  let fleet: Fleet;
  before(async () => {
    fleet = await startFleet({ generators: GENERATORS, reconcileIntervalMs: 1000, startConcurrency: 2 });
  });
  after(() => fleet?.stack.stop());

  it("converges every generator, the restarted ones too, to the newest version and its sha256", async () => {
    const { stack } = fleet;
    const adapter = adapterOfSize(fleet.base, 1, 7);
    let i = 0;
    const publish = async () => {
      const res = await stack.publish("fleet", {
        config: adapter.config,
        weights: distinctWeights(adapter.weights, i++),
      });
      assert.equal(res.status, 201, await res.clone().text());
      return publishResultSchema.parse(await res.json());
    };
    const first = await publish();
    await waitConverged(stack, "fleet", first.version, first.sha256, CONVERGE_MS);

    // Spread over the fleet, like a node going down takes replicas from everywhere.
    const victims = Array.from({ length: KILLED }, (_, k) => k * (GENERATORS / KILLED));
    const pids = victims.map((g) => stack.generators[g]?.proc.pid);
    // Versions keep coming, back to back, for the whole kill and restart. Each step waits for a
    // number of publishes rather than a time: on a busy machine one publish can take seconds.
    let publishing = true;
    const published: { version: number; sha256: string }[] = [];
    const publisher = (async () => {
      while (publishing) published.push(await publish());
    })();
    const publishedMore = async (k: number) => {
      const target = published.length + k;
      while (published.length < target) {
        await Promise.race([publisher, sleep(50)]);
        if (!publishing) return;
      }
    };
    try {
      await publishedMore(2);
      await Promise.all(victims.map((g) => fleet.kill(g)));
      for (const g of victims) assert.equal((await stack.generators[g]?.exited)?.signal, "SIGKILL");
      const whileDown = published.length;
      await publishedMore(2);
      assert.ok(published.length >= whileDown + 2, "versions were published while 8 generators were down");
      for (const g of victims) await fleet.restart(g);
      await publishedMore(2);
    } finally {
      publishing = false;
      await publisher;
    }

    const newest = published.at(-1);
    assert.ok(newest !== undefined && newest.version >= first.version + 6, "versions were published mid-run");
    // The trainer's own view of the run names the same newest version and weights.
    const listed = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/fleet/versions`)).json(),
    );
    assert.equal(listed.current, newest.version);
    assert.equal(listed.versions.find((v) => v.version === newest.version)?.sha256, newest.sha256);

    await waitConverged(stack, "fleet", newest.version, newest.sha256, CONVERGE_MS);
    // The restarted generators are new processes on the old ports, and serve it too.
    for (const [k, g] of victims.entries()) assert.notEqual(stack.generators[g]?.proc.pid, pids[k]);
    for (const g of stack.generators) {
      const active = (await stack.adapters(g)).active.fleet;
      assert.deepEqual(active, { version: newest.version, sha256: newest.sha256 }, g.name);
    }
  });
});
