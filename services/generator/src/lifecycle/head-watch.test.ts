import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import { AdapterStore } from "@loracast/shared/store";
import { HEAD_GRACE_MS, HeadWatch } from "./head-watch.ts";
import { keptLog, signedStores, testClock } from "./lifecycle-fixture.ts";

/** A trainer's store (signs) and a generator's (verifies) over one bucket, with a watch on a clock. */
function setup() {
  const { objects, trainer, reader } = signedStores();
  const clock = testClock(1_000_000);
  const { log, lines } = keptLog();
  const watch = new HeadWatch(reader, clock, log, true);
  const head = (version: number, rollbacks = 0) =>
    trainer.writeHead({
      schema: "loracast.head/v1",
      run: "r",
      version,
      rollbacks,
      issuedAt: new Date(clock.t).toISOString(),
      expiresAt: new Date(clock.t + 86_400_000).toISOString(),
    });
  const findings = () => watch.all().map((f) => f.finding);
  return { objects, watch, clock, lines, head, findings };
}

describe("HeadWatch: a run with versions and no valid signed head", () => {
  it("defers (held, unreported) within the grace, then reports missing_head and holds; a valid head lifts it", async () => {
    const { watch, clock, lines, head, findings } = setup();
    await watch.check("r", [1, 2], 0);
    assert.match(watch.held("r") ?? "", /holds no valid signed head yet/);
    assert.deepEqual(findings(), []);
    clock.t += HEAD_GRACE_MS;
    await watch.check("r", [1, 2], 0);
    assert.deepEqual(findings(), ["missing_head"]);
    assert.match(
      watch.held("r") ?? "",
      /up to v2 but holds no head: a hidden rollback record cannot be ruled out/,
    );
    assert.equal(lines.filter((l) => l.finding === "missing_head").length, 1);
    await head(2);
    await watch.check("r", [1, 2], 0);
    assert.equal(watch.held("r"), null);
    assert.deepEqual(findings(), []);
  });

  it("the trainer's publish race: a head written before the next pass never reports or latches", async () => {
    const { watch, clock, head, findings } = setup();
    await watch.check("r", [1], 0);
    assert.notEqual(watch.held("r"), null, "nothing is activated between manifest and head");
    await head(1);
    clock.t += 1000;
    await watch.check("r", [1], 0);
    assert.equal(watch.held("r"), null);
    assert.deepEqual(findings(), []);
  });

  it("a generator that saw a valid head reports a deleted one, and is not held by it alone", async () => {
    const { objects, watch, clock, head, findings } = setup();
    await head(2);
    await watch.check("r", [1, 2], 0);
    await objects.delete("runs/r/head.json");
    await watch.check("r", [1, 2], 0);
    clock.t += HEAD_GRACE_MS;
    await watch.check("r", [1, 2], 0);
    assert.deepEqual(findings(), ["missing_head"]);
    assert.equal(watch.held("r"), null);
  });

  it("a refused head counts as none, and is judged once while its bytes stay the same", async () => {
    const { objects, clock } = setup();
    let refused = 0;
    const reader = new AdapterStore(objects, {
      trusted: new TrustedKeys([Signer.generate().publicKey]),
      onRefused: () => refused++,
    });
    const own = new HeadWatch(reader, clock, keptLog().log, true);
    await objects.put("runs/r/head.json", new TextEncoder().encode("{}"));
    for (let i = 0; i < 3; i++) {
      await own.check("r", [1], 0);
      clock.t += HEAD_GRACE_MS;
    }
    assert.equal(refused, 1);
    assert.match(own.held("r") ?? "", /holds a head it refused \(unsigned\)/);
  });
});
