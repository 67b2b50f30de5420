/**
 * Issue 15, the tampering suite against floods: a bucket writer puts junk manifests (`{}`, no
 * signature) under many version keys. Real processes: the embedded S3 server, the trainer, and two
 * generators. Each junk manifest is refused, logged and counted once; while its bytes stay the same
 * it is not judged again (no log line, no count), and `GET /v1/adapters` lists the newest few of the
 * versions refused, with a count of the rest. A manifest that changes is judged anew.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { REFUSED_VERSION_ROWS } from "@loracast/shared/generator-api";
import { manifestKey } from "@loracast/shared/store";
import { type Stack, startStack } from "../helpers/stack.ts";
import { encodeJson, type TamperKit, tamperKit } from "../helpers/tampering.ts";

const RUN = "flooded";
const WAIT_MS = 90_000;
/** Junk versions v3..v152. */
const JUNK = Array.from({ length: 150 }, (_, i) => i + 3);

describe("tampering: junk manifests are refused once each, not on every retry", () => {
  let stack: Stack;
  let gs: Service[];
  let kit: TamperKit;
  const unsignedCount = async (g: Service) =>
    Number(
      /^loracast_store_records_refused_total\{record="manifest",reason="unsigned"\} (\d+)$/m.exec(
        await kit.metrics(g),
      )?.[1] ?? 0,
    );
  /** How many `store record refused` lines `g` logged for each key of the run's manifests. */
  const refusedLines = (g: Service) => {
    const per = new Map<string, number>();
    for (const l of g.logs)
      if (l.msg === "store record refused" && String(l.key).startsWith(`runs/${RUN}/versions/`))
        per.set(String(l.key), (per.get(String(l.key)) ?? 0) + 1);
    return per;
  };
  const failedLines = (g: Service) =>
    g.logs.filter((l) => l.msg === "adapter failed verification" && l.run === RUN).length;

  before(async () => {
    stack = await startStack({ generators: 2 });
    gs = stack.generators;
    kit = tamperKit(stack, RUN);
  });
  after(async () => {
    await stack?.stop();
  });

  it("serves v1 and v2, then refuses each of 150 junk manifests once", async () => {
    assert.equal(await kit.publish(1), 1);
    assert.equal(await kit.publish(2), 2);
    for (const g of gs) await stack.waitActive(g, RUN, 2, WAIT_MS);
    for (let i = 0; i < JUNK.length; i += 25)
      await Promise.all(
        JUNK.slice(i, i + 25).map((v) => kit.bucket.objects.put(manifestKey(RUN, v), encodeJson({}))),
      );
    for (const g of gs)
      await eventually(
        `${g.name} refused every junk manifest`,
        async () => ((await unsignedCount(g)) >= JUNK.length ? true : undefined),
        WAIT_MS,
      );
    // Long enough for the first retries of every version (2 s, 4 s, 8 s): unchanged, they are silent.
    await sleep(16_000);
    for (const g of gs) {
      assert.equal(await unsignedCount(g), JUNK.length, `${g.name} counts each junk manifest once`);
      const per = refusedLines(g);
      assert.equal(per.size, JUNK.length, `${g.name} logged every junk key`);
      assert.deepEqual(
        [...per].filter(([, n]) => n > 1),
        [],
        `${g.name} logs each refused key once`,
      );
      assert.equal(failedLines(g), JUNK.length, `${g.name} fails each junk version once`);
    }
    await kit.agree(gs, 2);
  });

  it("lists the newest refused versions and counts the rest", async () => {
    for (const g of gs) {
      const list = await stack.adapters(g);
      const failed = list.data.filter((a) => a.run === RUN && a.state === "failed").map((a) => a.version);
      assert.deepEqual(
        failed.sort((a, b) => b - a),
        JUNK.slice(-REFUSED_VERSION_ROWS).reverse(),
        `${g.name} lists the newest ${REFUSED_VERSION_ROWS}`,
      );
      assert.equal(list.refusedVersionsOmitted[RUN], JUNK.length - REFUSED_VERSION_ROWS);
      assert.match(
        list.data.find((a) => a.run === RUN && a.version === 152)?.reason ?? "",
        /has no signature \(unchanged; read again in \d+ s\)/,
      );
    }
  });

  it("judges a junk manifest again once its bytes change", async () => {
    const key = manifestKey(RUN, 152);
    await kit.bucket.objects.put(key, encodeJson({ changed: true }));
    for (const g of gs) {
      await eventually(
        `${g.name} refuses the changed manifest`,
        async () => ((refusedLines(g).get(key) ?? 0) === 2 ? true : undefined),
        WAIT_MS,
      );
      assert.equal(await unsignedCount(g), JUNK.length + 1);
    }
    await kit.agree(gs, 2);
  });

  it("judges a refused head once per bytes, not on every reconcile pass", async () => {
    const key = `runs/${RUN}/head.json`;
    const genuine = await kit.bucket.objects.get(key);
    assert.ok(genuine !== null);
    await kit.bucket.objects.put(key, encodeJson({}));
    const lines = (g: Service) =>
      g.logs.filter((l) => l.msg === "store record refused" && l.key === key).length;
    for (const g of gs)
      await eventually(
        `${g.name} refuses the unsigned head`,
        async () => (lines(g) > 0 ? true : undefined),
        WAIT_MS,
      );
    // Reconcile passes every second here: ten more passes read the same bytes.
    await sleep(10_000);
    for (const g of gs) {
      assert.equal(lines(g), 1, `${g.name} logs the refused head once`);
      const heads = /^loracast_store_records_refused_total\{record="head",reason="unsigned"\} (\d+)$/m.exec(
        await kit.metrics(g),
      );
      assert.equal(heads?.[1], "1", `${g.name} counts it once`);
    }
    await kit.bucket.objects.put(key, genuine);
    await kit.agree(gs, 2);
  });
});
