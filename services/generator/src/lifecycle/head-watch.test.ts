import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Signer, TrustedKeys } from "@loracast/shared/signing";
import { AdapterStore } from "@loracast/shared/store";
import { HEAD_GRACE_MS, HeadWatch } from "./head-watch.ts";
import { keptLog, signedStores, testClock } from "./lifecycle-fixture.ts";

/** One pass as the reconciler makes it: the head read first, then checked against listings made after it. */
async function pass(watch: HeadWatch, listed: readonly number[], rollbacks: number): Promise<void> {
  watch.check("r", await watch.read("r"), listed, rollbacks);
}

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
    await pass(watch, [1, 2], 0);
    assert.match(watch.held("r") ?? "", /holds no valid signed head yet/);
    assert.deepEqual(findings(), []);
    clock.t += HEAD_GRACE_MS;
    await pass(watch, [1, 2], 0);
    assert.deepEqual(findings(), ["missing_head"]);
    assert.match(
      watch.held("r") ?? "",
      /up to v2 but holds no head: a hidden rollback record cannot be ruled out/,
    );
    assert.equal(lines.filter((l) => l.finding === "missing_head").length, 1);
    await head(2);
    await pass(watch, [1, 2], 0);
    assert.equal(watch.held("r"), null);
    assert.deepEqual(findings(), []);
  });

  it("the trainer's publish race: a head written before the next pass never reports or latches", async () => {
    const { watch, clock, head, findings } = setup();
    await pass(watch, [1], 0);
    assert.notEqual(watch.held("r"), null, "nothing is activated between manifest and head");
    await head(1);
    clock.t += 1000;
    await pass(watch, [1], 0);
    assert.equal(watch.held("r"), null);
    assert.deepEqual(findings(), []);
  });

  it("a generator that saw a valid head reports a deleted one, and is not held by it alone", async () => {
    const { objects, watch, clock, head, findings } = setup();
    await head(2);
    await pass(watch, [1, 2], 0);
    await objects.delete("runs/r/head.json");
    await pass(watch, [1, 2], 0);
    clock.t += HEAD_GRACE_MS;
    await pass(watch, [1, 2], 0);
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
      await pass(own, [1], 0);
      clock.t += HEAD_GRACE_MS;
    }
    assert.equal(refused, 1);
    assert.match(own.held("r") ?? "", /holds a head it refused \(unsigned\)/);
  });
});

describe("HeadWatch: races with the trainer and between passes", () => {
  it("a publish landing between a pass's head read and its listing reports nothing; a hidden version still does", async () => {
    const { watch, clock, head, findings } = setup();
    await head(1);
    const reading = await watch.read("r");
    // The trainer publishes v2: its manifest (listed below), then its head.
    clock.t += 1000;
    await head(2);
    watch.check("r", reading, [1, 2], 0);
    assert.deepEqual(findings(), []);
    // The next pass reads the v2 head; a store that lists only v1 now hides v2.
    await pass(watch, [1], 0);
    assert.deepEqual(findings(), ["hidden_versions"]);
  });

  it("overlapping passes: a read begun before a newer head was seen is not stale_head; one begun after is", async () => {
    const { objects, watch, clock, lines, head, findings } = setup();
    await head(1);
    const older = await objects.get("runs/r/head.json");
    const slow = await watch.read("r");
    clock.t += 1000;
    await head(2);
    await pass(watch, [1, 2], 0);
    watch.check("r", slow, [1, 2], 0);
    assert.deepEqual(findings(), []);
    assert.equal(lines.filter((l) => l.msg === "store state is stale").length, 0);
    // The v1 head put back (validly signed): a read begun now finds it older than the newest seen.
    await objects.put("runs/r/head.json", older as Uint8Array);
    await pass(watch, [1, 2], 0);
    assert.deepEqual(findings(), ["stale_head"]);
  });
});
