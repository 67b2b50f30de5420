/**
 * Issue 15, round b, items 1 and 2: the trainer keeps its own record of what it signed (its ledger
 * in TRAINER_DATA_DIR), so a bucket writer who deletes the run's head and a rollback record cannot
 * make the trainer re-sign a state without that rollback. Real processes: the embedded S3 server,
 * the trainer, and a generator that trusts its key. The attacker writes to the bucket directly.
 * Each trigger (a versions read, a publish, the repair pass of a restarted trainer at start)
 * puts the record and the head back, logs and counts it, and the fleet keeps the rollback.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { runHeadSchema } from "@loracast/shared/manifest";
import { headKey, rollbackKey } from "@loracast/shared/store";
import { runVersionsSchema } from "@loracast/shared/trainer-api";
import { type Stack, startStack } from "../helpers/stack.ts";
import { decodeJson, type TamperKit, tamperKit } from "../helpers/tampering.ts";

const RUN = "ledger";
const WAIT_MS = 60_000;
const RECORD = rollbackKey(RUN, 3, 1);
const HEAD = headKey(RUN);

describe("the trainer's ledger: a deleted rollback record and head are put back, never re-signed away", () => {
  let stack: Stack;
  let hooked: Service;
  let kit: TamperKit;
  /** The rollback record's bytes as the trainer wrote them. */
  let record: Uint8Array | null = null;
  const head = async () => runHeadSchema.parse(decodeJson(await kit.bucket.objects.get(HEAD)));
  const repairedCount = async (kind: string) =>
    Number(
      new RegExp(`^loracast_store_records_repaired_total\\{record="${kind}"\\} (\\d+)$`, "m").exec(
        await (await fetch(`${stack.trainer.url}/metrics`)).text(),
      )?.[1] ?? 0,
    );
  const hide = () => Promise.all([kit.bucket.objects.delete(RECORD), kit.bucket.objects.delete(HEAD)]);

  before(async () => {
    stack = await startStack({ generators: 1 });
    hooked = stack.generators[0] as Service;
    kit = tamperKit(stack, RUN);
  });
  after(async () => {
    await stack?.stop();
  });

  it("publishes v1..v3 and rolls back to v1", async () => {
    for (const seed of [1, 2, 3]) await kit.publish(seed);
    await stack.waitActive(hooked, RUN, 3, WAIT_MS);
    await kit.rollback(1);
    await stack.waitActive(hooked, RUN, 1, WAIT_MS);
    record = await kit.bucket.objects.get(RECORD);
    assert.ok(record !== null);
    assert.deepEqual([(await head()).version, (await head()).rollbacks], [3, 1]);
  });

  it("a versions read repairs both, reports the repairs, and still says v1 is current", async () => {
    await hide();
    const res = await fetch(`${stack.trainer.url}/v1/runs/${RUN}/versions`);
    const body = runVersionsSchema.parse(await res.json());
    assert.equal(body.current, 1, JSON.stringify(body));
    assert.deepEqual(
      body.store.repaired.map((r) => [r.record, r.key, r.found]),
      [
        ["rollback", RECORD, "missing"],
        ["head", HEAD, "missing"],
      ],
    );
    assert.deepEqual(await kit.bucket.objects.get(RECORD), record);
    assert.deepEqual([(await head()).version, (await head()).rollbacks], [3, 1]);
    const line = stack.trainer.logs.find((l) => l.msg === "store record repaired" && l.key === RECORD);
    assert.equal(line?.level, "warn");
    assert.equal(await repairedCount("rollback"), 1);
    assert.equal(await repairedCount("head"), 1);
    // A generator that starts now sees the rollback: it serves v1, not v3.
    const fresh = await stack.startGenerator("fresh");
    try {
      await stack.waitActive(fresh, RUN, 1, WAIT_MS);
      assert.equal((await stack.adapters(fresh)).data.find((a) => a.version === 3)?.state, "revoked");
    } finally {
      await fresh.stop();
    }
  });

  it("a publish after the same attack signs a head that still counts the rollback", async () => {
    await hide();
    assert.equal(await kit.publish(4), 4);
    assert.deepEqual([(await head()).version, (await head()).rollbacks], [4, 1]);
    assert.deepEqual(await kit.bucket.objects.get(RECORD), record);
    await stack.waitActive(hooked, RUN, 4, WAIT_MS);
    const listed = await kit.trainerVersions();
    assert.deepEqual(
      listed.versions.map((v) => [v.version, v.state]),
      [
        [1, "retired"],
        [2, "revoked"],
        [3, "revoked"],
        [4, "active"],
      ],
    );
  });

  it("a restarted trainer repairs from the ledger it kept in TRAINER_DATA_DIR at start, before any request", async () => {
    await stack.trainer.stop();
    await hide();
    // The periodic pass an hour away and the head refresh a quarter of a day: only the pass at
    // start can put the records back, and no request asks for them.
    await stack.startTrainer({ TRAINER_REPAIR_INTERVAL_S: "3600" });
    await eventually(
      "the start-up pass puts the rollback record back",
      async () => ((await kit.bucket.objects.get(RECORD)) !== null ? true : undefined),
      WAIT_MS,
      200,
    );
    await eventually(
      "the start-up pass re-signs the head",
      async () => ((await kit.bucket.objects.get(HEAD)) !== null ? true : undefined),
      WAIT_MS,
      200,
    );
    assert.deepEqual(await kit.bucket.objects.get(RECORD), record);
    assert.deepEqual([(await head()).version, (await head()).rollbacks], [4, 1]);
    assert.ok(stack.trainer.logs.some((l) => l.msg === "store record repaired" && l.key === RECORD));
    assert.equal((await kit.trainerVersions()).current, 4);
  });
});
