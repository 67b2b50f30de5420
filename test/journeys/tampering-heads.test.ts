/**
 * Issue 15, the tampering suite on the signed head (TUF's timestamp role). Real processes: the
 * embedded S3 server, the trainer (which signs), a generator that follows from the start (`hooked`)
 * and one started after the attack (`fresh`). The attacker deletes the run's head and the newest
 * rollback record: without a valid head nothing rules out a hidden revocation, so a generator that
 * never saw a head must fail closed (activate nothing, refuse named versions, say why), report it,
 * and recover by itself once the objects are back.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { manifestKey } from "@loracast/shared/store";
import { type Stack, startStack } from "../helpers/stack.ts";
import { type TamperKit, tamperKit } from "../helpers/tampering.ts";

const RUN = "headless";
const HEAD = `runs/${RUN}/head.json`;
const WAIT_MS = 60_000;

describe("tampering: a run whose store holds no valid signed head fails closed", () => {
  let stack: Stack;
  let hooked: Service;
  let fresh: Service | undefined;
  let kit: TamperKit;
  const stale = (text: string, finding: string) =>
    new RegExp(`^loracast_store_stale_state\\{run="${RUN}",finding="${finding}"\\} 1$`, "m").test(text);
  const waitFinding = (g: Service, finding: string, present = true) =>
    eventually(
      `${g.name} ${present ? "reports" : "no longer reports"} ${finding}`,
      async () => (stale(await kit.metrics(g), finding) === present ? true : undefined),
      WAIT_MS,
    );
  /** `load_lora_adapter` of `lora_path` (these generators run no engine; the same resolution as `model`). */
  const load = (g: Service, path: string) =>
    fetch(`${g.url}/v1/load_lora_adapter`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lora_name: path.includes("@") ? path : "probe", lora_path: path }),
    });

  before(async () => {
    stack = await startStack({ generators: 1 });
    hooked = stack.generators[0] as Service;
    kit = tamperKit(stack, RUN);
  });
  after(async () => {
    await fresh?.stop();
    await stack?.stop();
  });

  let headBytes: Uint8Array | null = null;
  let rollbackKey = "";
  let rollbackBytes: Uint8Array | null = null;

  it("publishes v1..v4 and rolls back to v3, which the generator serves", async () => {
    for (let seed = 1; seed <= 4; seed++) assert.equal(await kit.publish(seed), seed);
    await stack.waitActive(hooked, RUN, 4, WAIT_MS);
    await kit.rollback(3);
    await stack.waitActive(hooked, RUN, 3, WAIT_MS);
    await kit.agree([hooked], 3);
  });

  it("a fresh generator holds the run when the head and the rollback record are deleted: nothing revoked is served", async () => {
    headBytes = await kit.bucket.objects.get(HEAD);
    const [key] = await kit.bucket.objects.list(`runs/${RUN}/rollbacks/`);
    assert.ok(headBytes !== null && key !== undefined);
    rollbackKey = key;
    rollbackBytes = await kit.bucket.objects.get(key);
    await kit.bucket.objects.delete(HEAD);
    await kit.bucket.objects.delete(key);

    fresh = await stack.startGenerator("fresh");
    await waitFinding(fresh, "missing_head");
    const line = await fresh.waitForLog(
      (l) => l.msg === "store state is stale" && l.finding === "missing_head",
    );
    assert.match(String(line.message), /holds no head/);
    assert.equal((await fetch(`${fresh.url}/readyz`)).status, 200);
    const list = await stack.adapters(fresh);
    assert.equal(list.active[RUN], undefined, "nothing is activated");
    assert.ok(!list.data.some((a) => a.run === RUN && a.loaded), "nothing is pulled");

    const named = await load(fresh, `${RUN}@4`);
    assert.equal(named.status, 503, `${RUN}@4 (revoked) is not served`);
    assert.match(await named.text(), /"adapter_held".*held until its store is repaired.*holds no head/);
    // The run itself says it is held, and why (503: the store's fault, not the request's).
    const run = await load(fresh, RUN);
    assert.equal(run.status, 503);
    assert.match(await run.text(), /"adapter_held".*held until its store is repaired.*holds no head/);

    // The generator that saw the head keeps checking against it: the hidden rollback holds it too,
    // and it keeps serving the version it had, v3.
    await waitFinding(hooked, "hidden_rollbacks");
    await waitFinding(hooked, "missing_head");
    assert.deepEqual((await stack.adapters(hooked)).active[RUN]?.version, 3);
    assert.equal((await load(hooked, `${RUN}@4`)).status, 503);
  });

  it("recovers by itself once the head and the record are restored", async () => {
    assert.ok(fresh !== undefined && headBytes !== null && rollbackBytes !== null);
    // The head first: a generator started now holds the run for the record still hidden, and says so
    // for the run itself too (it has no active version), not "no active version yet".
    await kit.bucket.objects.put(HEAD, headBytes);
    const late = await stack.startGenerator("late");
    try {
      await waitFinding(late, "hidden_rollbacks");
      const run = await load(late, RUN);
      assert.equal(run.status, 503);
      assert.match(
        await run.text(),
        /"adapter_held".*held until its store is repaired.*counts 1 rollback records/,
      );
    } finally {
      await late.stop();
    }
    await kit.bucket.objects.put(rollbackKey, rollbackBytes);
    await stack.waitActive(fresh, RUN, 3, WAIT_MS);
    for (const g of [fresh, hooked]) {
      await waitFinding(g, "missing_head", false);
      await waitFinding(g, "hidden_rollbacks", false);
    }
    await kit.agree([hooked, fresh], 3);
    assert.equal((await load(fresh, `${RUN}@4`)).status, 410, "v4 is revoked, and says so");
  });

  it("running generators report hidden_versions when the newest manifests are deleted, as a fresh one does", async () => {
    assert.ok(fresh !== undefined);
    assert.equal(await kit.publish(5), 5);
    assert.equal(await kit.publish(6), 6);
    for (const g of [hooked, fresh]) await stack.waitActive(g, RUN, 6, WAIT_MS);
    const keys = [5, 6].map((v) => manifestKey(RUN, v));
    const saved = await Promise.all(keys.map((k) => kit.bucket.objects.get(k)));
    for (const k of keys) await kit.bucket.objects.delete(k);
    for (const g of [hooked, fresh]) await waitFinding(g, "hidden_versions");
    // Withdrawn to what the trainer calls current: v3 (v4 is revoked, v5 and v6 are missing).
    for (const g of [hooked, fresh]) await stack.waitActive(g, RUN, 3, WAIT_MS);
    await kit.agree([hooked, fresh], 3);

    for (const [i, k] of keys.entries()) await kit.bucket.objects.put(k, saved[i] as Uint8Array);
    for (const g of [hooked, fresh]) {
      await stack.waitActive(g, RUN, 6, WAIT_MS);
      await waitFinding(g, "hidden_versions", false);
    }
    await kit.agree([hooked, fresh], 6);
  });
});
