/**
 * Issue 15, the tampering suite continued: every way a manifest is refused has its own labelled
 * reason, and the fleet agrees with the trainer's record after tampering. Real processes: the
 * embedded S3 server, the trainer (which signs), and verify-only generators trusting its key, one per
 * way of reading the store: webhook (`hooked`), reconcile only (`polled`), started after the attack
 * (`fresh`, `late`). The attacker writes to the bucket directly and holds no key, but may copy what
 * the trainer signed: v1's manifest and signature put under a later version's key stay validly
 * signed by the trainer, and must still never be activated as that version.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import type { VersionManifest } from "@loracast/shared/manifest";
import { signatureKey } from "@loracast/shared/signing";
import { manifestKey, sha256Hex } from "@loracast/shared/store";
import { type Stack, startStack } from "../helpers/stack.ts";
import { decodeJson, encodeJson, type TamperKit, tamperKit } from "../helpers/tampering.ts";

const RUN = "moved";
const WAIT_MS = 60_000;

describe("tampering: every refused manifest has a reason, and the fleet agrees with the trainer", () => {
  let stack: Stack;
  let hooked: Service;
  let polled: Service;
  let fresh: Service | undefined;
  let kit: TamperKit;
  const metrics = (g: Service) => kit.metrics(g);
  const refusedCount = async (g: Service, reason: string) => {
    const m = new RegExp(
      `^loracast_store_records_refused_total\\{record="manifest",reason="${reason}"\\} (\\d+)$`,
      "m",
    ).exec(await metrics(g));
    return Number(m?.[1] ?? 0);
  };
  /** Writes `bytes` as `RUN@version`'s manifest, signed by the trainer's key (a publisher's bug). */
  const putSigned = async (version: number, bytes: Uint8Array) => {
    const envelope = stack.signer.envelope(bytes);
    await kit.bucket.objects.put(signatureKey(envelope.sha256), envelope.bytes);
    await kit.bucket.objects.put(manifestKey(RUN, version), bytes);
  };
  const waitAll = (gs: Service[], version: number) =>
    Promise.all(gs.map((g) => stack.waitActive(g, RUN, version, WAIT_MS)));

  before(async () => {
    stack = await startStack({ generators: 1 });
    hooked = stack.generators[0] as Service;
    // Started after the trainer, so not among its webhook subscribers: it learns by reconcile only.
    polled = await stack.startGenerator("polled");
    kit = tamperKit(stack, RUN);
  });
  after(async () => {
    await Promise.all([polled?.stop(), fresh?.stop()]);
    await stack?.stop();
  });

  it("publishes v1 and v2, which every generator activates", async () => {
    assert.equal(await kit.publish(1), 1);
    assert.equal(await kit.publish(2), 2);
    await waitAll([hooked, polled], 2);
    await kit.agree([hooked, polled], 2);
  });

  it("refuses v1's signed manifest copied over v3's key on the webhook, reconcile and fresh-start paths (misplaced)", async () => {
    const v1 = await kit.bucket.objects.get(manifestKey(RUN, 1));
    assert.ok(v1 !== null);
    // Paused while the trainer publishes v3 and the attacker copies v1's manifest over it, so that
    // neither has read the genuine v3 first: the webhook waits in the socket.
    for (const g of [hooked, polled]) g.proc.kill("SIGSTOP");
    try {
      assert.equal(await kit.publish(3), 3);
      // v1's envelope (signatures/sha256/<sha of v1's bytes>) already signs these bytes.
      await kit.bucket.objects.put(manifestKey(RUN, 3), v1);
    } finally {
      for (const g of [hooked, polled]) g.proc.kill("SIGCONT");
    }
    fresh = await stack.startGenerator("fresh");
    for (const g of [hooked, polled, fresh]) {
      const row = await stack.waitState(g, RUN, 3, "failed", WAIT_MS);
      assert.match(row.reason ?? "", /names moved@1, which belongs elsewhere/);
      assert.ok((await refusedCount(g, "misplaced")) >= 1, `${g.name} counts it as misplaced`);
      assert.ok(
        g.logs.some((l) => l.msg === "store record refused" && l.code === "misplaced"),
        `${g.name} logs it`,
      );
      const refused = (await stack.adapters(g)).refused.find((r) => r.key === manifestKey(RUN, 3));
      assert.deepEqual([refused?.run, refused?.record, refused?.code], [RUN, "manifest", "misplaced"]);
    }
    // The webhook announced the genuine v3's sha256; the store held v1's bytes: a refused event.
    await eventually(
      "the hooked generator counts the event_mismatch",
      async () => ((await refusedCount(hooked, "event_mismatch")) >= 1 ? true : undefined),
      WAIT_MS,
      20,
    );
    const record = await kit.trainerVersions();
    assert.equal(record.versions.find((v) => v.version === 3)?.state, "failed");
    await kit.agree([hooked, polled, fresh], 2);
  });

  it("drops a version whose manifest is replaced after the fleet verified it, as the trainer and a fresh generator do, and converges back once it is restored", async () => {
    assert.equal(await kit.publish(4), 4);
    await waitAll([hooked, polled, fresh as Service], 4);
    await kit.agree([hooked, polled, fresh as Service], 4);
    const key = manifestKey(RUN, 4);
    const genuine = await kit.bucket.objects.get(key);
    const v1 = await kit.bucket.objects.get(manifestKey(RUN, 1));
    assert.ok(genuine !== null && v1 !== null);
    await kit.bucket.objects.put(key, v1);
    // The trainer judges v4 by what the store holds now, as a generator started now does.
    const late = await stack.startGenerator("late");
    try {
      await stack.waitActive(late, RUN, 2, WAIT_MS);
      assert.equal((await kit.trainerVersions()).versions.find((v) => v.version === 4)?.state, "failed");
      // Those that verified the genuine v4 earlier stop serving it as the run too.
      const all = [hooked, polled, fresh as Service, late];
      await waitAll(all, 2);
      for (const g of all) {
        const row = (await stack.adapters(g)).data.find((a) => a.version === 4);
        assert.equal(row?.state, "failed", g.name);
        assert.match(row?.reason ?? "", /names moved@1, which belongs elsewhere/, g.name);
      }
      await kit.agree(all, 2);
      assert.ok(
        hooked.logs.some((l) => l.msg.startsWith("active version withdrawn") && l.version === 4),
        "the withdrawal is logged",
      );

      // The operator restores the genuine manifest: every generator serves v4 again.
      await kit.bucket.objects.put(key, genuine);
      await waitAll(all, 4);
      await kit.agree(all, 4);
    } finally {
      await late.stop();
    }
  });

  it("counts a malformed manifest, a malformed signature and 2^40 bytes under their own reasons", async () => {
    await putSigned(5, new TextEncoder().encode("{not json"));
    const template = decodeJson(await kit.bucket.objects.get(manifestKey(RUN, 4))) as VersionManifest;
    const [config, weights] = template.adapter.files;
    assert.ok(config !== undefined && weights !== undefined);
    await putSigned(
      6,
      encodeJson({
        ...template,
        version: 6,
        parent: 5,
        adapter: { ...template.adapter, files: [config, { ...weights, bytes: 2 ** 40 }] },
      }),
    );
    // A manifest whose signature envelope is not one.
    const v7 = encodeJson({ ...template, version: 7, parent: 6 });
    await kit.bucket.objects.put(signatureKey(sha256Hex(v7)), new TextEncoder().encode("{not json"));
    await kit.bucket.objects.put(manifestKey(RUN, 7), v7);
    for (const g of [hooked, polled, fresh as Service]) {
      assert.match(
        (await stack.waitState(g, RUN, 7, "failed", WAIT_MS)).reason ?? "",
        /envelope is not JSON/,
      );
      assert.ok((await refusedCount(g, "malformed_signature")) >= 1, `${g.name}: malformed_signature`);
      assert.match((await stack.waitState(g, RUN, 5, "failed", WAIT_MS)).reason ?? "", /not valid JSON/);
      assert.match(
        (await stack.waitState(g, RUN, 6, "failed", WAIT_MS)).reason ?? "",
        /announces 1099511627776 bytes/,
      );
      assert.ok((await refusedCount(g, "malformed")) >= 1, `${g.name}: malformed`);
      assert.ok((await refusedCount(g, "too_large")) >= 1, `${g.name}: too_large`);
      assert.equal((await stack.adapters(g)).active[RUN]?.version, 4, g.name);
    }
    const record = await kit.trainerVersions();
    for (const v of [5, 7]) assert.equal(record.versions.find((r) => r.version === v)?.state, "failed");
  });
});
