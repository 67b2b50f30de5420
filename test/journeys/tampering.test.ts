/**
 * Issue 15, items 1 and 3: the store is a shared medium, and whoever can write to it must not choose
 * what the fleet serves. Real processes: the embedded S3 server, the trainer (which signs), and
 * verify-only generators that trust the trainer's public key, one for each way a generator reads
 * the store: by webhook (`hooked`, subscribed), by reconcile (`polled`, running, not subscribed) and
 * by starting after the attack (`fresh`). The attacker writes to the bucket directly: an unsigned
 * manifest, one signed by its own key, a published manifest substituted with another adapter's files
 * (re-labelled with the trainer's envelope), and rollback records that are malformed or unsigned.
 * In every case no generator activates a version the trainer did not publish, and every generator's
 * active version and sha256 are the trainer's record.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { runVersionsSchema, type VersionManifest } from "@loracast/shared/manifest";
import { Signer, signatureKey } from "@loracast/shared/signing";
import { type AdapterStore, manifestKey, sha256Hex } from "@loracast/shared/store";
import { signWebhook } from "@loracast/shared/webhooks";
import { randomAdapter } from "../helpers/adapters.ts";
import { SECRET, type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { type TamperKit, tamperKit } from "../helpers/tampering.ts";

const RUN = "tamper";
const WAIT_MS = 60_000;
const encode = (v: unknown) => new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);
const decode = (b: Uint8Array | null) => JSON.parse(new TextDecoder().decode(b ?? new Uint8Array()));

describe("tampering: only what the trainer signed is served", () => {
  let stack: Stack;
  let hooked: Service;
  let polled: Service;
  let fresh: Service | undefined;
  let kit: TamperKit;
  /** The attacker's handle on the bucket: plain writes, no key. */
  let bucket: AdapterStore;
  const trainerVersions = () => kit.trainerVersions();
  const metrics = (g: Service) => kit.metrics(g);
  const publish = (seed: number) => kit.publish(seed);
  const agree = (generators: Service[], version: number) => kit.agree(generators, version);
  /** A manifest for `RUN@version` naming another adapter's files, uploaded as blobs by the attacker. */
  const forged = async (version: number, seed: number): Promise<Uint8Array> => {
    const files = randomAdapter(LLAMA_CONFIG, seed, 4, ["q_proj", "v_proj"]);
    const template = decode(await bucket.objects.get(manifestKey(RUN, 1))) as VersionManifest;
    const [config, weights] = await Promise.all([
      bucket.putBlob(files.config),
      bucket.putBlob(files.weights),
    ]);
    return encode({
      ...template,
      version,
      parent: version - 1,
      adapter: {
        files: [
          { name: "adapter_config.json", ...config.file },
          { name: "adapter_model.safetensors", ...weights.file },
        ],
      },
    });
  };

  before(async () => {
    stack = await startStack({ generators: 1 });
    hooked = stack.generators[0] as Service;
    // Started after the trainer, so not among its webhook subscribers: it learns by reconcile only.
    polled = await stack.startGenerator("polled");
    kit = tamperKit(stack, RUN);
    bucket = kit.bucket;
  });
  after(async () => {
    await Promise.all([polled?.stop(), fresh?.stop()]);
    await stack?.stop();
  });

  it("publishes a signed v1 that every generator verifies and activates", async () => {
    assert.equal(await publish(1), 1);
    for (const g of [hooked, polled]) await stack.waitActive(g, RUN, 1, WAIT_MS);
    assert.match(await metrics(hooked), /^loracast_manifest_signatures_required 1$/m);
    const bytes = await bucket.objects.get(manifestKey(RUN, 1));
    assert.ok(bytes !== null);
    const envelope = decode(await bucket.objects.get(signatureKey(sha256Hex(bytes))));
    assert.equal(envelope.signatures[0].keyid, stack.signer.keyId);
    await agree([hooked, polled], 1);
  });

  it("refuses an unsigned manifest, and one signed by a foreign key, on the reconcile path; the next publishes take their keys", async () => {
    await bucket.objects.put(manifestKey(RUN, 2), await forged(2, 102));
    const foreign = await forged(3, 103);
    const envelope = Signer.generate().envelope(foreign);
    await bucket.objects.put(signatureKey(envelope.sha256), envelope.bytes);
    await bucket.objects.put(manifestKey(RUN, 3), foreign);
    for (const g of [hooked, polled]) {
      const unsigned = await stack.waitState(g, RUN, 2, "failed", WAIT_MS);
      assert.match(unsigned.reason ?? "", /refused: it has no signature/);
      const other = await stack.waitState(g, RUN, 3, "failed", WAIT_MS);
      assert.match(other.reason ?? "", /refused: it is signed only by keys this reader does not trust/);
      const text = await metrics(g);
      assert.match(
        text,
        /^loracast_store_records_refused_total\{record="manifest",reason="unsigned"\} [1-9]/m,
      );
      assert.match(
        text,
        /^loracast_store_records_refused_total\{record="manifest",reason="foreign_key"\} [1-9]/m,
      );
    }
    const record = await trainerVersions();
    assert.deepEqual(
      record.versions.map((v) => [v.version, v.state]),
      [
        [1, "active"],
        [2, "failed"],
        [3, "failed"],
      ],
    );
    assert.ok(hooked.logs.some((l) => l.msg === "store record refused" && l.code === "unsigned"));
    await agree([hooked, polled], 1);
    // The trainer numbers after what verifies: its next publishes take (overwrite) the junk's keys.
    assert.equal(await publish(2), 2);
    assert.equal(await publish(3), 3);
    for (const g of [hooked, polled]) await stack.waitActive(g, RUN, 3, WAIT_MS);
    await agree([hooked, polled], 3);
  });

  it("refuses a published manifest substituted before it was read, on the webhook, reconcile and fresh-start paths", async () => {
    // Both generators are paused while the trainer publishes v4 and the attacker swaps its manifest,
    // so neither can have read the genuine one first: the webhook waits in the socket, the reconcile
    // timer in the paused process.
    for (const g of [hooked, polled]) g.proc.kill("SIGSTOP");
    try {
      assert.equal(await publish(4), 4);
      const genuine = await bucket.objects.get(manifestKey(RUN, 4));
      assert.ok(genuine !== null);
      const substitute = await forged(4, 104);
      // The trainer's envelope re-labelled as signing the substitute: the signature cannot match.
      const envelope = decode(await bucket.objects.get(signatureKey(sha256Hex(genuine))));
      envelope.signed.sha256 = sha256Hex(substitute);
      await bucket.objects.put(signatureKey(sha256Hex(substitute)), encode(envelope));
      await bucket.objects.put(manifestKey(RUN, 4), substitute);
    } finally {
      for (const g of [hooked, polled]) g.proc.kill("SIGCONT");
    }
    fresh = await stack.startGenerator("fresh");
    // A forged version is newer than v3; the first reconcile pass (the one readiness waits for)
    // still reaches v3, as a forged manifest costs that pass no download and no budget.
    const ready = await eventually(
      "fresh ready",
      async () => {
        const r = await fetch(`${(fresh as Service).url}/readyz`);
        return r.status === 200
          ? ((await r.json()) as { active: Record<string, { version: number }> })
          : undefined;
      },
      WAIT_MS,
      20,
    );
    assert.equal(ready.active[RUN]?.version, 3);
    for (const g of [hooked, polled, fresh]) {
      const row = await stack.waitState(g, RUN, 4, "failed", WAIT_MS);
      assert.match(row.reason ?? "", /refused|does not match the announced/);
      // Failed on what the store holds (not on the event): the re-labelled signature does not verify.
      assert.match(
        await metrics(g),
        /^loracast_store_records_refused_total\{record="manifest",reason="bad_signature"\} [1-9]/m,
      );
    }
    const record = await trainerVersions();
    assert.equal(record.versions.find((v) => v.version === 4)?.state, "failed");
    assert.match(record.versions.find((v) => v.version === 4)?.reason ?? "", /does not verify/);
    await agree([hooked, polled, fresh], 3);
  });

  /** The signed head as the store held it right after v5: what an attacker replays later. */
  let headAt5: Uint8Array | null = null;

  it("activates the trainer's next signed version everywhere", async () => {
    assert.equal(await publish(5), 5);
    headAt5 = await bucket.objects.get(`runs/${RUN}/head.json`);
    assert.ok(headAt5 !== null, "the trainer signs a head with each publish");
    for (const g of [hooked, polled, fresh as Service]) await stack.waitActive(g, RUN, 5, WAIT_MS);
    await agree([hooked, polled, fresh as Service], 5);
  });

  it("skips malformed and unsigned rollback records: no 500, reconcile goes on, a fresh generator gets ready", async () => {
    // A record that is not JSON, signed with the trainer's own key (a publisher's bug, not an attack).
    const garbage = new TextEncoder().encode("{not json");
    const signed = stack.signer.envelope(garbage);
    await bucket.objects.put(signatureKey(signed.sha256), signed.bytes);
    await bucket.objects.put(`runs/${RUN}/rollbacks/000000000099-000000000001.json`, garbage);
    // A well-formed rollback that would revoke v5, written without the trainer's key.
    await bucket.writeRollback({
      schema: "loracast.rollback/v1",
      run: RUN,
      to: 1,
      atVersion: 5,
      createdAt: new Date().toISOString(),
    });
    const res = await fetch(`${stack.trainer.url}/v1/runs/${RUN}/versions`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(runVersionsSchema.parse(await res.json()).current, 5);
    assert.equal(await publish(6), 6);
    for (const g of [hooked, polled, fresh as Service]) await stack.waitActive(g, RUN, 6, WAIT_MS);
    const late = await stack.startGenerator("late");
    try {
      await stack.waitActive(late, RUN, 6, WAIT_MS);
      assert.equal((await fetch(`${late.url}/readyz`)).status, 200);
      const text = await metrics(late);
      const refusals = late.logs.filter((l) => l.msg === "store record refused");
      assert.match(
        text,
        /^loracast_store_records_refused_total\{record="rollback",reason="malformed"\} 1$/m,
        JSON.stringify(refusals),
      );
      assert.match(text, /^loracast_store_records_refused_total\{record="rollback",reason="unsigned"\} 1$/m);
      // Reported in /v1/adapters too: key, kind, code, message and when, on every generator.
      for (const g of [hooked, late]) {
        const refused = (await stack.adapters(g)).refused.filter((r) => r.record === "rollback");
        assert.deepEqual(
          refused.map((r) => [r.run, r.key, r.code]).sort(),
          [
            [RUN, `runs/${RUN}/rollbacks/000000000005-000000000001.json`, "unsigned"],
            [RUN, `runs/${RUN}/rollbacks/000000000099-000000000001.json`, "malformed"],
          ],
          g.name,
        );
        for (const r of refused) {
          assert.match(r.message, new RegExp(`^rollback record ${r.key} refused: `));
          assert.ok(r.firstSeenAt <= r.lastSeenAt && r.lastSeenAt <= Date.now());
        }
      }
      await agree([hooked, polled, fresh as Service, late], 6);
    } finally {
      await late.stop();
    }
  });

  it("detects a stale signed latest: hidden newest versions, and an older head put back", async () => {
    const key6 = manifestKey(RUN, 6);
    const manifest6 = await bucket.objects.get(key6);
    assert.ok(manifest6 !== null && headAt5 !== null);
    await bucket.objects.delete(key6);
    const frozen = await stack.startGenerator("frozen");
    try {
      // It can only serve v5, a validly signed but stale latest; the signed head says so.
      await stack.waitActive(frozen, RUN, 5, WAIT_MS);
      // Those that verified v6 before it went missing drop it too: the fleet agrees on v5.
      for (const g of [hooked, polled, fresh as Service]) await stack.waitActive(g, RUN, 5, WAIT_MS);
      await eventually(
        "frozen reports hidden versions",
        async () =>
          /^loracast_store_stale_state\{run="tamper",finding="hidden_versions"\} 1$/m.test(
            await metrics(frozen),
          )
            ? true
            : undefined,
        WAIT_MS,
        20,
      );
      const record = await trainerVersions();
      assert.equal(record.current, 5);
      assert.equal(record.versions.find((v) => v.version === 6)?.state, "failed");
      assert.match(record.versions.find((v) => v.version === 6)?.reason ?? "", /missing from the store/);
      await agree([hooked, polled, fresh as Service, frozen], 5);

      await bucket.objects.put(`runs/${RUN}/head.json`, headAt5);
      for (const g of [polled, frozen])
        await eventually(
          `${g.name} reports the replayed head`,
          async () =>
            /^loracast_store_stale_state\{run="tamper",finding="stale_head"\} 1$/m.test(await metrics(g))
              ? true
              : undefined,
          WAIT_MS,
          20,
        );

      // The operator restores the manifest: the fleet converges on the trainer's record again.
      await bucket.objects.put(key6, manifest6);
      for (const g of [hooked, polled, fresh as Service, frozen]) await stack.waitActive(g, RUN, 6, WAIT_MS);
      await agree([hooked, polled, fresh as Service, frozen], 6);
    } finally {
      await frozen.stop();
    }
  });

  it("refuses a signed event that names another manifest, without failing the version", async () => {
    // Reconciles once at start, then not within the test: it learns of v7 only from events.
    const slow = await stack.startGenerator("slow", { RECONCILE_INTERVAL_MS: "600000" });
    try {
      await stack.waitActive(slow, RUN, 6, WAIT_MS);
      const v7 = await stack.publish(RUN, randomAdapter(LLAMA_CONFIG, 7, 4, ["q_proj", "v_proj"]));
      const body7 = (await v7.json()) as { version: number; sha256: string; manifestSha256: string };
      kit.published.set(body7.version, body7.sha256);
      const event = (manifestSha256: string, id: string) => {
        const body = JSON.stringify({
          type: "adapter.published",
          run: RUN,
          version: 7,
          manifestKey: manifestKey(RUN, 7),
          manifestSha256,
        });
        const headers = signWebhook({ secret: SECRET, id, clock: { now: () => Date.now() }, body });
        return fetch(`${slow.url}/v1/webhooks/adapters`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body,
        });
      };
      const other = await bucket.objects.get(manifestKey(RUN, 6));
      assert.equal((await event(sha256Hex(other ?? new Uint8Array()), "msg_misdirected")).status, 202);
      await eventually(
        "the bad event is counted",
        async () =>
          /^loracast_webhook_events_refused_total 1$/m.test(await metrics(slow)) ? true : undefined,
        WAIT_MS,
        20,
      );
      const row = (await stack.adapters(slow)).data.find((a) => a.version === 7);
      assert.notEqual(row?.state, "failed", "a bad event is not a bad version");
      assert.equal((await event(body7.manifestSha256, "msg_genuine")).status, 202);
      await stack.waitActive(slow, RUN, 7, WAIT_MS);
      assert.equal((await stack.adapters(slow)).active[RUN]?.sha256, body7.sha256);
    } finally {
      await slow.stop();
    }
  });

  it("fails a signed manifest announcing 2^40 bytes at once, naming the blob", async () => {
    await stack.waitActive(polled, RUN, 7, WAIT_MS);
    const template = decode(await bucket.objects.get(manifestKey(RUN, 7))) as VersionManifest;
    const [config, weights] = template.adapter.files;
    assert.ok(config !== undefined && weights !== undefined);
    // Signed with the trainer's key: a publisher's bug, which signatures do not catch.
    const huge = encode({
      ...template,
      version: 8,
      parent: 7,
      adapter: { ...template.adapter, files: [config, { ...weights, bytes: 2 ** 40 }] },
    });
    const envelope = stack.signer.envelope(huge);
    await bucket.objects.put(signatureKey(envelope.sha256), envelope.bytes);
    await bucket.objects.put(manifestKey(RUN, 8), huge);
    const row = await stack.waitState(polled, RUN, 8, "failed", WAIT_MS);
    assert.match(
      row.reason ?? "",
      /^blob adapter_model\.safetensors \(blobs\/sha256\/[0-9a-f]{64}\) announces 1099511627776 bytes, more than the adapter cache holds/,
    );
    assert.equal((await stack.adapters(polled)).active[RUN]?.version, 7);
  });

  it("rewrites a corrupt blob that a publish reuses, so the new version and older ones sharing it load", async () => {
    const manifest = decode(await bucket.objects.get(manifestKey(RUN, 7))) as VersionManifest;
    const config = manifest.adapter.files.find((f) => f.name === "adapter_config.json");
    assert.ok(config !== undefined);
    const bytes = await bucket.objects.get(config.blob);
    assert.ok(bytes !== null);
    const corrupt = Uint8Array.from(bytes);
    corrupt[0] = (corrupt[0] ?? 0) ^ 1;
    await bucket.objects.put(config.blob, corrupt);
    const repaired = async () =>
      Number(
        /^loracast_store_blobs_repaired_total (\d+)$/m.exec(
          await (await fetch(`${stack.trainer.url}/metrics`)).text(),
        )?.[1],
      );
    assert.equal(await repaired(), 0);
    // Same adapter_config.json as every version of the run: the publish reuses that blob.
    assert.equal(await publish(9), 9);
    for (const g of [hooked, polled]) await stack.waitActive(g, RUN, 9, WAIT_MS);
    assert.deepEqual(await bucket.objects.get(config.blob), bytes);
    // The repair is visible: a warning naming the blob and both hashes, and a counter.
    const line = stack.trainer.logs.find((l) => l.msg === "corrupt blob repaired");
    assert.equal(line?.level, "warn");
    assert.equal(line?.key, config.blob);
    assert.equal(line?.expectedSha256, config.sha256);
    assert.equal(line?.foundSha256, sha256Hex(corrupt));
    assert.equal(await repaired(), 1);
    const healed = await stack.startGenerator("healed");
    try {
      await stack.waitActive(healed, RUN, 9, WAIT_MS);
      const res = await fetch(`${healed.url}/v1/load_lora_adapter`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lora_name: `${RUN}@7` }),
      });
      // An older version that shares the blob loads on a generator that never held it.
      assert.equal(res.status, 200, await res.text());
      assert.equal((await stack.adapters(healed)).data.find((a) => a.version === 7)?.state, "retired");
    } finally {
      await healed.stop();
    }
  });

  it("fails closed when a signed rollback record is hidden: a fresh generator serves no version it revoked", async () => {
    const res = await fetch(`${stack.trainer.url}/v1/runs/${RUN}/rollback`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ version: 7 }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    // The trainer's record is replaced by bytes no key signed: the revocation of v9 is hidden.
    await bucket.objects.put(
      `runs/${RUN}/rollbacks/000000000009-000000000007.json`,
      new TextEncoder().encode("{not json"),
    );
    const late = await stack.startGenerator("held");
    try {
      await eventually(
        "the held generator reports the hidden rollback record",
        async () => {
          const text = await (await fetch(`${late.url}/metrics`)).text();
          return /^loracast_store_stale_state\{run="[^"]+",finding="hidden_rollbacks"\} 1$/m.test(text)
            ? true
            : undefined;
        },
        WAIT_MS,
      );
      await eventually("the held generator is ready", async () =>
        (await fetch(`${late.url}/readyz`)).status === 200 ? true : undefined,
      );
      assert.equal((await stack.adapters(late)).active[RUN], undefined, "nothing is activated");
      // v8 failed for good earlier (its 2^40-byte manifest); v9 is the revoked version that loads.
      const named = await fetch(`${late.url}/v1/load_lora_adapter`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lora_name: `${RUN}@9` }),
      });
      assert.notEqual(named.status, 200, `${RUN}@9 is not served`);
      assert.match(await named.text(), /held until its store is repaired/);
    } finally {
      await late.stop();
    }
  });
});
