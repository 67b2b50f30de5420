import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { S3_LOCAL_CREDENTIALS } from "@loracast/dev-support/stack";
import { generatorErrorBodySchema } from "@loracast/shared/generator-api";
import { decodeSafetensors } from "@loracast/shared/safetensors";
import { blobKey, sha256Hex } from "@loracast/shared/store";
import { publishResultSchema, trainerErrorBodySchema } from "@loracast/shared/trainer-api";
import { signWebhook } from "@loracast/shared/webhooks";
import { fixtureAdapter, randomAdapter } from "../helpers/adapters.ts";
import { BUCKET, s3Settings } from "../helpers/s3.ts";
import { SECRET, type Stack, startStack, TOKEN } from "../helpers/stack.ts";

describe("bad input gets a clear error and loses nothing", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ generators: 1 });
    assert.equal((await stack.publish("bad", randomAdapter(LLAMA_CONFIG, 1, 2, ["q_proj"]))).status, 201);
    await stack.waitActive(stack.generators[0] as never, "bad", 1);
  });
  after(async () => {
    await stack.stop();
  });
  const g = () => stack.generators[0] as NonNullable<Stack["generators"][0]>;

  async function storeKeys(): Promise<string[]> {
    const { S3ObjectStore } = await import("@loracast/shared/store");
    const objects = new S3ObjectStore(s3Settings(stack.s3.url, "loracast", { maxAttempts: 1 }));
    const keys = (await objects.list("")).filter((k) => !k.startsWith(".probe"));
    objects.client.destroy();
    return keys;
  }

  it("refuses forged, expired and replayed webhooks with 401, and nothing happens", async () => {
    const event = {
      type: "adapter.published",
      run: "bad",
      version: 99,
      manifestKey: "runs/bad/versions/000000000099.json",
      manifestSha256: "0".repeat(64),
    };
    const body = JSON.stringify(event);
    const post = (headers: Record<string, string>) =>
      fetch(`${g().url}/v1/webhooks/adapters`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
    const forged = signWebhook({
      secret: `whsec_${Buffer.from("not-the-secret-but-long-enough!!").toString("base64")}`,
      id: "f1",
      clock: { now: () => Date.now() },
      body,
    });
    const r1 = await post({ ...forged });
    assert.equal(r1.status, 401);
    assert.match(
      generatorErrorBodySchema.parse(await r1.json()).error.message,
      /no webhook-signature matches/,
    );

    const expired = signWebhook({
      secret: SECRET,
      id: "e1",
      clock: { now: () => Date.now() - 10 * 60_000 },
      body,
    });
    const r2 = await post({ ...expired });
    assert.equal(r2.status, 401);
    assert.match(generatorErrorBodySchema.parse(await r2.json()).error.message, /old/);

    const good = signWebhook({
      secret: SECRET,
      id: "once",
      clock: { now: () => Date.now() },
      body: JSON.stringify({ ...event, version: 1 }),
    });
    const first = await fetch(`${g().url}/v1/webhooks/adapters`, {
      method: "POST",
      headers: { ...good },
      body: JSON.stringify({ ...event, version: 1 }),
    });
    assert.equal(first.status, 202);
    const replay = await fetch(`${g().url}/v1/webhooks/adapters`, {
      method: "POST",
      headers: { ...good },
      body: JSON.stringify({ ...event, version: 1 }),
    });
    assert.equal(replay.status, 401);
    assert.match(generatorErrorBodySchema.parse(await replay.json()).error.message, /already received/);

    const { data, active } = await stack.adapters(g());
    assert.equal(active.bad?.version, 1);
    assert.ok(!data.some((a) => a.version === 99), "the forged version was never even announced");
    const metrics = await (await fetch(`${g().url}/metrics`)).text();
    assert.match(metrics, /loracast_webhooks_rejected_total\{reason="signature"\} 2/);
    assert.match(metrics, /loracast_webhooks_rejected_total\{reason="replay"\} 1/);
    await g().waitForLog(
      (l) => l.msg === "webhook rejected" && String(l.reason).includes("already received"),
    );
  });

  it("refuses malformed safetensors at publish with the reason, and writes nothing", async () => {
    const good = randomAdapter(LLAMA_CONFIG, 2, 2, ["q_proj"]);
    const decoded = decodeSafetensors(good.weights);
    assert.ok(decoded.ok);
    const headerLen = decoded.value.dataStart - 8;
    const withHeader = (mutate: (h: Record<string, { dtype: string; data_offsets: number[] }>) => void) => {
      const h = JSON.parse(new TextDecoder().decode(good.weights.subarray(8, 8 + headerLen)));
      mutate(h);
      const json = new TextEncoder().encode(JSON.stringify(h).padEnd(headerLen, " "));
      const out = new Uint8Array(good.weights);
      if (json.length !== headerLen) throw new Error("header grew");
      out.set(json, 8);
      return out;
    };
    const first = Object.keys(
      JSON.parse(new TextDecoder().decode(good.weights.subarray(8, 8 + headerLen))),
    ).find((k) => k !== "__metadata__") as string;
    const huge = new Uint8Array(good.weights);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    const cases: [string, Uint8Array, RegExp][] = [
      ["truncated", good.weights.subarray(0, good.weights.length - 10), /data_offsets end .* past the/],
      ["huge header length", huge, /header length 1099511627776 exceeds the cap/],
      [
        "overlapping offsets",
        withHeader((h) => {
          const e = h[first];
          if (e) e.data_offsets = [4, (e.data_offsets[1] ?? 0) + 4];
        }),
        /invalid|overlap|gap|past/,
      ],
      [
        "bad dtype",
        withHeader((h) => {
          const e = h[first];
          if (e) e.dtype = "Q4";
        }),
        /unsupported dtype "Q4"/,
      ],
    ];
    const before = await storeKeys();
    for (const [what, weights, reason] of cases) {
      const res = await stack.publish("bad", { config: good.config, weights });
      assert.equal(res.status, 400, what);
      const body = trainerErrorBodySchema.parse(await res.json());
      assert.equal(body.error.code, "invalid_adapter", what);
      assert.match(body.error.message, reason, what);
    }
    assert.deepEqual(await storeKeys(), before);
  });

  it("refuses an upload whose multipart content type cannot be read with 400, not 500, and writes nothing", async () => {
    const before = await storeKeys();
    for (const type of [
      "multipart/form-data",
      "multipart/form-data; boundary=",
      "multipart/form-data; charset=x",
    ]) {
      const res = await fetch(`${stack.trainer.url}/v1/runs/bad/adapters`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": type },
        body: "--x\r\n",
      });
      const json = await res.json();
      assert.equal(res.status, 400, `${type}: ${JSON.stringify(json)}`);
      const body = trainerErrorBodySchema.parse(json);
      assert.equal(body.error.code, "bad_request", type);
      assert.match(body.error.message, /expected multipart\/form-data/, type);
    }
    assert.deepEqual(await storeKeys(), before);
  });

  it("fails a version whose blob was tampered with in the bucket, naming the blob, and keeps serving", async () => {
    const next = randomAdapter(LLAMA_CONFIG, 3, 2, ["q_proj"]);
    const tampered = new Uint8Array(next.weights);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0xff;
    // The generator is paused while the version is published and its blob then altered in the
    // bucket (a publish heals a corrupt blob it reuses, so the bytes change after it).
    const paused = g().proc;
    paused.kill("SIGSTOP");
    let version: number;
    try {
      const res = await stack.publish("bad", next);
      assert.equal(res.status, 201);
      ({ version } = publishResultSchema.parse(await res.json()));
      const s3 = new S3Client({
        endpoint: stack.s3.url,
        region: "us-east-1",
        credentials: S3_LOCAL_CREDENTIALS,
        forcePathStyle: true,
        requestChecksumCalculation: "WHEN_REQUIRED",
      });
      await s3.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: `loracast/${blobKey(sha256Hex(next.weights))}`,
          Body: tampered,
        }),
      );
      s3.destroy();
    } finally {
      paused.kill("SIGCONT");
    }
    const row = await stack.waitState(g(), "bad", version, "failed");
    assert.match(
      row.reason ?? "",
      new RegExp(
        `blob adapter_model\\.safetensors \\(blobs/sha256/${sha256Hex(next.weights)}\\): sha256 [0-9a-f]{64} does not match`,
      ),
    );
    assert.equal((await stack.adapters(g())).active.bad?.version, 1);
    await g().waitForLog(
      (l) => l.msg === "adapter failed verification" && l.version === version && l.stillServing === 1,
    );
  });

  it("fails an adapter that targets modules the base lacks, naming the tensor", async () => {
    const res = await stack.publish("bad", fixtureAdapter("qwen2-tiny"));
    const { version } = publishResultSchema.parse(await res.json());
    const row = await stack.waitState(g(), "bad", version, "failed");
    assert.match(
      row.reason ?? "",
      /tensor `base_model\.model\.model\.layers\.\d+\.self_attn\.[qv]_proj\.lora_[AB]\.weight`: (shape .* does not match base|module .* does not exist)/,
    );
  });
});
