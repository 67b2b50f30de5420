/**
 * Issue 15, round b, item 8: the README's key rotation steps, run as written. Real processes: the
 * embedded S3 server, the trainer (restarted with a new key) and a generator trusting both keys.
 * Step (2) needs the old public key in the trainer's own MANIFEST_PUBLIC_KEYS: without it the
 * trainer lists its own earlier versions as failed and refuses a rollback to one with 409.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Signer } from "@loracast/shared/signing";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";
import { type TamperKit, tamperKit } from "../helpers/tampering.ts";

const RUN = "rotate";
const WAIT_MS = 60_000;

describe("signing key rotation, as the README says", () => {
  let stack: Stack;
  let kit: TamperKit;
  const next = Signer.generate();
  let nextKeyFile = "";
  const rollback = (version: number) =>
    fetch(`${stack.trainer.url}/v1/runs/${RUN}/rollback`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ version }),
    });

  before(async () => {
    stack = await startStack();
    kit = tamperKit(stack, RUN);
    nextKeyFile = join(stack.dir, "keys", "next.pem");
    writeFileSync(nextKeyFile, next.toPem(), { mode: 0o600 });
  });
  after(async () => {
    await stack?.stop();
  });

  it("publishes v1 and v2 with the old key", async () => {
    assert.equal(await kit.publish(1), 1);
    assert.equal(await kit.publish(2), 2);
  });

  it("without the old public key in its own MANIFEST_PUBLIC_KEYS, the trainer fails its earlier versions (the pitfall)", async () => {
    await stack.trainer.stop();
    await stack.startTrainer({ TRAINER_SIGNING_KEY_FILE: nextKeyFile });
    const listed = await kit.trainerVersions();
    assert.deepEqual(
      listed.versions.map((v) => v.state),
      ["failed", "failed"],
    );
    assert.equal((await rollback(1)).status, 409);
  });

  it("steps (1)-(2): generators trust both keys, the trainer signs with the new one and reads the old", async () => {
    const both = `${stack.signer.publicKey},${next.publicKey}`;
    const g = await stack.startGenerator("both", { MANIFEST_PUBLIC_KEYS: both });
    try {
      await stack.trainer.stop();
      await stack.startTrainer({
        TRAINER_SIGNING_KEY_FILE: nextKeyFile,
        MANIFEST_PUBLIC_KEYS: stack.signer.publicKey,
      });
      assert.equal(await kit.publish(3), 3);
      await stack.waitActive(g, RUN, 3, WAIT_MS);
      const res = await rollback(1);
      assert.equal(res.status, 200, await res.text());
      await stack.waitActive(g, RUN, 1, WAIT_MS);
      assert.deepEqual(
        (await kit.trainerVersions()).versions.map((v) => [v.version, v.state]),
        [
          [1, "active"],
          [2, "revoked"],
          [3, "revoked"],
        ],
      );
    } finally {
      await g.stop();
    }
  });
});
