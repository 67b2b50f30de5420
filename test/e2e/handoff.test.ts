import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { modelListSchema } from "@loracast/shared/generator-api";
import { publishResultSchema, runVersionsSchema, trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { fixtureAdapter, randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("handoff end to end: trainer → S3 → 3 generators", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ generators: 3 });
  });
  after(async () => {
    await stack.stop();
  });

  it("publishes the PEFT reference adapter and every generator activates it with its sha256", async () => {
    const files = fixtureAdapter("llama-tiny");
    const res = await stack.publish("e2e", files);
    assert.equal(res.status, 201);
    const body = publishResultSchema.parse(await res.json());
    assert.deepEqual(
      { run: body.run, version: body.version, sha256: body.sha256, manifestKey: body.manifestKey },
      {
        run: "e2e",
        version: 1,
        sha256: sha(files.weights),
        manifestKey: "runs/e2e/versions/000000000001.json",
      },
    );
    for (const g of stack.generators) {
      const row = await stack.waitActive(g, "e2e", 1);
      assert.equal(row.sha256, sha(files.weights));
      const models = modelListSchema.parse(await (await fetch(`${g.url}/v1/models`)).json());
      assert.ok(models.data.some((m) => m.id === "e2e@1" && m.parent === "llama-tiny"));
      const ready = await fetch(`${g.url}/readyz`);
      assert.equal(ready.status, 200);
    }
  });

  it("fails the Qwen2 adapter on a Llama base, naming a tensor, and keeps serving the previous version", async () => {
    const res = await stack.publish("e2e", fixtureAdapter("qwen2-tiny"));
    assert.equal(res.status, 201, "the trainer has no base configured, so only the generators can tell");
    for (const g of stack.generators) {
      const row = await stack.waitState(g, "e2e", 2, "failed");
      assert.match(
        row.reason ?? "",
        /tensor `base_model\.model\.model\.layers\.\d\.self_attn\.[qv]_proj\.lora_A\.weight`: shape \[4, 96\] does not match base \[4, 64\]/,
      );
      const { active } = await stack.adapters(g);
      assert.equal(active.e2e?.version, 1);
    }
  });

  it("moves on to the next good version, and rolls back on request", async () => {
    const v3 = randomAdapter(LLAMA_CONFIG, 3, 4, ["q_proj", "v_proj"]);
    assert.equal((await stack.publish("e2e", v3)).status, 201);
    for (const g of stack.generators) await stack.waitActive(g, "e2e", 3);

    const rb = await fetch(`${stack.trainer.url}/v1/runs/e2e/rollback`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ version: 1 }),
    });
    assert.equal(rb.status, 200);
    assert.deepEqual(await rb.json(), { run: "e2e", current: 1, revoked: [2, 3] });
    for (const g of stack.generators) {
      await stack.waitActive(g, "e2e", 1);
      const rows = (await stack.adapters(g)).data.filter((a) => a.run === "e2e");
      assert.equal(rows.find((a) => a.version === 3)?.state, "revoked");
      assert.equal(
        rows.find((a) => a.version === 2)?.state,
        "failed",
        "a version that failed here stays failed",
      );
    }
    const versions = runVersionsSchema.parse(
      await (await fetch(`${stack.trainer.url}/v1/runs/e2e/versions`)).json(),
    );
    assert.equal(versions.current, 1);
    assert.deepEqual(
      versions.versions.map((v) => v.state),
      ["active", "revoked", "revoked"],
    );

    const v4 = randomAdapter(LLAMA_CONFIG, 4, 4, ["q_proj", "v_proj"]);
    assert.equal((await stack.publish("e2e", v4)).status, 201);
    for (const g of stack.generators) await stack.waitActive(g, "e2e", 4);
  });

  it("refuses unauthenticated publishes", async () => {
    const form = new FormData();
    const res = await fetch(`${stack.trainer.url}/v1/runs/e2e/adapters`, { method: "POST", body: form });
    assert.equal(res.status, 401);
    const body = trainerErrorBodySchema.parse(await res.json());
    assert.equal(body.error.code, "unauthorized");
  });
});
