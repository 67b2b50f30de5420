/**
 * Adapters a base cannot serve correctly are refused on real processes (the embedded S3 server, a
 * trainer with the base, a trainer without one, two verifying generators): NaN and Inf factors,
 * PiSSA/OLoRA adapters saved before conversion, and `target_modules` regexes RE2 cannot run. Both
 * trainers answer 400 naming the tensor or field. Written to the store past any trainer (as an
 * older trainer would), each is marked `failed` by the generators with the same reason while they
 * keep serving the previous version. A Python-only regex with an RE2 equivalent is accepted and
 * selects the modules PEFT's `re.fullmatch` selects.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { trainerEnv } from "@loracast/dev-support/stack";
import { type Service, startService } from "@loracast/dev-support/supervisor";
import { systemClock } from "@loracast/shared/platform";
import {
  decodeSafetensors,
  encodeSafetensors,
  type TensorInput,
  toFloat16,
  toFloat32,
} from "@loracast/shared/safetensors";
import { AdapterStore, S3ObjectStore } from "@loracast/shared/store";
import { signWebhook } from "@loracast/shared/webhooks";
import { type AdapterFiles, randomAdapter } from "../helpers/adapters.ts";
import { s3Env, s3Settings } from "../helpers/s3.ts";
import { SECRET, type Stack, startServingStack, startStack, TOKEN } from "../helpers/stack.ts";

const good = (seed: number) => randomAdapter(LLAMA_CONFIG, seed, 2, ["q_proj", "v_proj"], 0.1);

/** The adapter re-encoded in `dtype`, with `value` written at element 3 of tensor `key`. */
function poisoned(files: AdapterFiles, dtype: "F32" | "F16", key: string, value: number): AdapterFiles {
  const file = decodeSafetensors(files.weights);
  if (!file.ok) throw file.error;
  const tensors: Record<string, TensorInput> = {};
  for (const [name, t] of file.value.tensors) {
    const data = toFloat32(t.dtype, t.bytes);
    if (name === key) data[3] = value;
    tensors[name] = { dtype, shape: t.shape, data: dtype === "F16" ? toFloat16(data) : data };
  }
  return { config: files.config, weights: encodeSafetensors(tensors, { format: "pt" }) };
}

function withConfig(files: AdapterFiles, patch: Record<string, unknown>): AdapterFiles {
  const config = { ...JSON.parse(new TextDecoder().decode(files.config)), ...patch };
  return { config: new TextEncoder().encode(JSON.stringify(config)), weights: files.weights };
}

const Q0_B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
const V1_A = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight";

/** Each refused adapter and what its refusal must say. */
const REFUSED: { name: string; files: AdapterFiles; reason: RegExp }[] = [
  {
    name: "nan",
    files: poisoned(good(11), "F32", Q0_B, Number.NaN),
    reason: /tensor `base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight`: contains NaN/,
  },
  {
    name: "inf",
    files: poisoned(good(12), "F16", V1_A, Number.POSITIVE_INFINITY),
    reason: /tensor `base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_A\.weight`: contains \+Inf/,
  },
  {
    name: "pissa",
    files: withConfig(good(13), { init_lora_weights: "pissa" }),
    reason: /init_lora_weights: "pissa" .*convert the adapter to plain LoRA/,
  },
  {
    name: "olora",
    files: withConfig(good(14), { init_lora_weights: "olora" }),
    reason: /init_lora_weights: "olora" .*convert the adapter to plain LoRA/,
  },
  {
    name: "alpha",
    // Finite factors, but alpha / r = 5e38 is beyond float32, where the engine folds it into B.
    files: withConfig(good(16), { lora_alpha: 1e39 }),
    reason:
      /module `model\.layers\.\d\.self_attn\.[qv]_proj`: LoRA scaling lora_alpha \/ r = 1e\+39 \/ 2 = 5e\+38 is not finite in float32/,
  },
  {
    name: "alpha-pattern",
    files: withConfig(good(17), { alpha_pattern: { v_proj: 1e308 } }),
    reason:
      /module `model\.layers\.\d\.self_attn\.v_proj`: LoRA scaling alpha_pattern \/ r = 1e\+308 \/ 2 .*not finite in float32/,
  },
  {
    name: "scaled-b",
    // A finite scaling (5e9) times a finite B element (1e30) overflows float32 once folded.
    files: withConfig(poisoned(good(18), "F32", Q0_B, 1e30), { lora_alpha: 1e10 }),
    reason:
      /module `model\.layers\.0\.self_attn\.q_proj`: lora_B scaled by lora_alpha \/ r = 10000000000 \/ 2 overflows float32/,
  },
  {
    name: "lookahead",
    // Valid for Python's re (PEFT loads it), but lookaround is beyond RE2.
    files: withConfig(good(15), { target_modules: ".*\\.(?!k_proj)[qv]_proj" }),
    reason: /target_modules: not a supported regular expression: .*\(\?!/,
  },
];

describe("adapters the base cannot serve are refused at publish and at verification", () => {
  let stack: Stack;
  let baseless: Service;
  let withBase: Service;
  let objects: S3ObjectStore;
  let store: AdapterStore;

  before(async () => {
    stack = await startStack({ generators: 2 });
    baseless = stack.trainer;
    withBase = await startService("trainer", {
      ...s3Env(stack.s3.url),
      ...trainerEnv({
        port: 0,
        dataDir: join(stack.dir, "trainer-with-base"),
        apiToken: TOKEN,
        signingKeyFile: stack.signingKeyFile,
        webhookSecret: SECRET,
        generators: stack.generators,
      }),
      TRAINER_BASE_CONFIG: LLAMA_CONFIG,
    });
    objects = new S3ObjectStore(s3Settings(stack.s3.url, "loracast"));
    // Signs as the trainer does: these versions must pass the signature and fail on their content.
    store = new AdapterStore(objects, { signer: stack.signer });
  });
  after(async () => {
    objects?.client.destroy();
    await withBase?.stop();
    await stack?.stop();
  });

  const publish = (trainer: Service, run: string, files: AdapterFiles) => {
    const form = new FormData();
    form.set("adapter_config.json", new Blob([files.config]), "adapter_config.json");
    form.set("adapter_model.safetensors", new Blob([files.weights]), "adapter_model.safetensors");
    return fetch(`${trainer.url}/v1/runs/${run}/adapters`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: form,
    });
  };

  it("both trainers answer 400 invalid_adapter naming the tensor or field, and publish nothing", async () => {
    for (const { name, files, reason } of REFUSED) {
      for (const trainer of [withBase, baseless]) {
        const res = await publish(trainer, `pub-${name}`, files);
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(res.status, 400, `${name} via ${trainer.name}: ${JSON.stringify(body)}`);
        assert.equal(body.error.code, "invalid_adapter");
        assert.match(body.error.message, reason, name);
      }
      assert.deepEqual(await store.listVersions(`pub-${name}`), [], `${name}: nothing in the store`);
    }
  });

  it("generators mark each such version failed with the reason and keep serving the previous one", async () => {
    await Promise.all(
      REFUSED.map(async ({ name, files, reason }, i) => {
        const run = `gen-${name}`;
        assert.equal((await publish(baseless, run, good(100 + i))).status, 201);
        for (const g of stack.generators) await stack.waitActive(g, run, 1);
        // Past every trainer check: the adapter goes straight to the store (signed with the trainer's
        // key) and its webhook to the generators, as an older trainer would publish it.
        const stored = await store.publishAdapter(run, {
          configBytes: files.config,
          weights: files.weights,
          draft: {
            createdAt: new Date().toISOString(),
            base: { fingerprint: null },
            probe: null,
            training: null,
            publisher: { service: "test", instance: "older-trainer" },
          },
        });
        const body = JSON.stringify({
          type: "adapter.published",
          run,
          version: stored.manifest.version,
          manifestKey: stored.key,
          manifestSha256: stored.sha256,
        });
        for (const g of stack.generators) {
          const headers = signWebhook({ secret: SECRET, id: `older-${run}`, clock: systemClock, body });
          const res = await fetch(`${g.url}/v1/webhooks/adapters`, {
            method: "POST",
            headers: { ...headers },
            body,
          });
          assert.equal(res.status, 202);
        }
        for (const g of stack.generators) {
          const row = await stack.waitState(g, run, 2, "failed");
          assert.match(row.reason ?? "", reason, `${name} on ${g.name}`);
          assert.equal(
            (await stack.adapters(g)).active[run]?.version,
            1,
            `${name}: ${g.name} still serves v1`,
          );
        }
      }),
    );
  });

  it("accepts a Python named-group regex and selects exactly what PEFT's re.fullmatch selects", async () => {
    // Selects q_proj and v_proj of both layers; the base's verification requires every targeted
    // module to have both factors and every factor to be targeted.
    const files = withConfig(good(21), { target_modules: "(?P<proj>.*\\.(q_proj|v_proj))" });
    const res = await publish(withBase, "pyregex", files);
    assert.equal(res.status, 201, await res.clone().text());
    for (const g of stack.generators) await stack.waitActive(g, "pyregex", 1);
    // The same pattern over only q_proj factors leaves v_proj targeted but missing.
    const qOnly = withConfig(randomAdapter(LLAMA_CONFIG, 22, 2, ["q_proj"], 0.1), {
      target_modules: "(?P<proj>.*\\.(q_proj|v_proj))",
    });
    const partial = await publish(withBase, "pyregex", qOnly);
    assert.equal(partial.status, 400);
    assert.match(
      ((await partial.json()) as { error: { message: string } }).error.message,
      /v_proj\.lora_A\.weight`: is targeted by adapter_config\.json but missing/,
    );
  });
});

describe("an adapter whose effect overflows float32 fails its requests instead of answering empty text", () => {
  const RUN = "overflow-serve";
  let stack: Stack;
  let generator: Service;

  before(async () => {
    ({ stack, generator } = await startServingStack());
  });
  after(async () => {
    await stack?.stop();
  });

  const complete = (stream: boolean) =>
    fetch(`${generator.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: `${RUN}@1`,
        prompt: "q5:",
        max_tokens: 3,
        temperature: 0,
        logprobs: 1,
        stream,
      }),
    });

  it("publishes lora_alpha 1.2e39 (every factor and the folded B are finite) and answers 422 naming the version", async () => {
    // alpha / r = 3e38 fits float32, as does B (|B| < 0.5) times it; the activations do not.
    const files = withConfig(randomAdapter(LLAMA_CONFIG, 31, 4, ["q_proj", "v_proj"]), {
      lora_alpha: 1.2e39,
    });
    const res = await stack.publish(RUN, files);
    assert.equal(res.status, 201, await res.clone().text());
    await stack.waitActive(generator, RUN, 1, 60_000);

    const plain = await complete(false);
    const body = (await plain.json()) as { error?: { code: string; message: string; param: string | null } };
    assert.equal(plain.status, 422, JSON.stringify(body));
    assert.equal(body.error?.code, "adapter_failed");
    assert.equal(body.error?.param, "model");
    assert.match(body.error?.message ?? "", /adapter overflow-serve@1 produced non-finite logits/);

    // Streamed: the 200 is already sent, so the error is the stream's last event and no [DONE] follows.
    const streamed = await complete(true);
    assert.equal(streamed.status, 200);
    const events = (await streamed.text())
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => l.slice(6));
    assert.notEqual(events.at(-1), "[DONE]");
    const last = JSON.parse(events.at(-1) ?? "{}") as { error?: { code: string; message: string } };
    assert.equal(last.error?.code, "adapter_failed");
    assert.match(last.error?.message ?? "", /adapter overflow-serve@1 produced non-finite logits/);
  });
});
