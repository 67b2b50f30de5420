/**
 * Issue 15, round b, items 3 and 4: junk a bucket writer puts under a run's `versions/` prefix
 * neither moves the trainer's numbering nor makes its versions read slow. Real processes: the
 * embedded S3 server and the trainer. The attacker writes `{}` (no signature) to the bucket directly.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { signatureKey } from "@loracast/shared/signing";
import { MAX_VERSION, manifestKey } from "@loracast/shared/store";
import { trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startStack } from "../helpers/stack.ts";
import { decodeJson, encodeJson, type TamperKit, tamperKit } from "../helpers/tampering.ts";

const JUNK = new TextEncoder().encode("{}");

describe("junk under a run's versions/ prefix", () => {
  let stack: Stack;
  let kit: TamperKit;

  before(async () => {
    stack = await startStack();
    kit = tamperKit(stack, "demo");
  });
  after(async () => {
    await stack?.stop();
  });

  it("numbers the next version after the newest verified one, and overwrites junk at that key", async () => {
    assert.equal(await kit.publish(1), 1);
    await kit.bucket.objects.put(manifestKey("demo", MAX_VERSION), JUNK);
    await kit.bucket.objects.put(manifestKey("demo", 2), JUNK);
    assert.equal(await kit.publish(2), 2);
    assert.equal(await kit.publish(3), 3);
    const listed = await kit.trainerVersions();
    assert.equal(listed.current, 3);
    assert.deepEqual(
      listed.versions.map((v) => [v.version, v.state]),
      [
        [1, "retired"],
        [2, "retired"],
        [3, "active"],
        [MAX_VERSION, "failed"],
      ],
    );
    assert.deepEqual(
      listed.store.refused.map((r) => [r.key, r.code]),
      [[manifestKey("demo", MAX_VERSION), "unsigned"]],
    );
  });

  it("refuses with 409, not 500, to publish past the 12-digit key space", async () => {
    // A validly signed manifest at the last key (a publisher's bug; the attacker holds no key).
    const template = decodeJson(await kit.bucket.objects.get(manifestKey("demo", 3))) as Record<
      string,
      unknown
    >;
    const last = encodeJson({ ...template, version: MAX_VERSION, parent: 3 });
    const envelope = stack.signer.envelope(last);
    await kit.bucket.objects.put(signatureKey(envelope.sha256), envelope.bytes);
    await kit.bucket.objects.put(manifestKey("demo", MAX_VERSION), last);
    const res = await stack.publish("demo", randomAdapter(LLAMA_CONFIG, 4, 4, ["q_proj", "v_proj"]));
    const json = await res.json();
    assert.equal(res.status, 409, JSON.stringify(json));
    const body = trainerErrorBodySchema.parse(json);
    assert.equal(body.error.code, "conflict");
    assert.match(body.error.message, /12-digit manifest keys/);
    assert.deepEqual(
      await kit.bucket.objects.list("runs/demo/versions/1"),
      [],
      "no 13-digit key was written",
    );
  });

  it("answers a versions read over 500 junk manifests from its cache while the store is unchanged", async (t) => {
    const alr = tamperKit(stack, "alr");
    assert.equal(await alr.publish(1), 1);
    assert.equal(await alr.publish(2), 2);
    const keys = Array.from({ length: 500 }, (_, i) => manifestKey("alr", i + 3));
    for (let i = 0; i < keys.length; i += 25)
      await Promise.all(keys.slice(i, i + 25).map((k) => alr.bucket.objects.put(k, JUNK)));
    const timed = async () => {
      const started = performance.now();
      const listed = await alr.trainerVersions();
      return { ms: performance.now() - started, listed };
    };
    const cold = await timed();
    const warm = await timed();
    t.diagnostic(
      `versions read over 500 junk manifests: cold ${cold.ms.toFixed(0)} ms, warm ${warm.ms.toFixed(0)} ms`,
    );
    for (const { listed } of [cold, warm]) {
      assert.equal(listed.current, 2);
      assert.equal(listed.versions.length, 502);
      assert.equal(listed.versions.filter((v) => v.state === "failed").length, 500);
    }
    // The cold read fetches 500 manifests and looks for 500 signatures; the warm one lists once.
    assert.ok(warm.ms * 4 < cold.ms, `warm ${warm.ms} ms, cold ${cold.ms} ms`);
    // A changed object is read again: the operator restores v3 by publishing over the junk.
    assert.equal(await alr.publish(3), 3);
    assert.equal((await alr.trainerVersions()).current, 3);
  });
});
