/**
 * Issue 16 item 3: vLLM's adapter admin API with vLLM's semantics, on real processes (embedded S3,
 * trainer, generators serving llama-tiny). `lora_name` is a served name: listed in /v1/models,
 * retrievable, usable as `model`; loading it again with a new `lora_path` replaces it in place while
 * a stream already running on the old version keeps that version; unloading removes it and unpins.
 * Also: every `lora_path` form, errors naming the right field, the admin token, and the refusal on a
 * non-loopback bind without one.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { eventually, type Service } from "@loracast/dev-support/supervisor";
import { generatorErrorBodySchema, modelListSchema } from "@loracast/shared/generator-api";
import { formatVersionRef } from "@loracast/shared/manifest";
import OpenAI from "openai";
import { type AdapterFiles, randomAdapter } from "../helpers/adapters.ts";
import { BUCKET } from "../helpers/s3.ts";
import { type Stack, startServingStack, TOKEN } from "../helpers/stack.ts";

const RUN = "lora-admin";
const BASE = "llama-tiny";
const ADMIN_TOKEN = "admin-token-0123456789abcdef";

const post = (g: Service, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${g.url}/v1/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

/** A refused call: its status, and the field and message of the error envelope. */
async function refusal(res: Response): Promise<{ status: number; param: string | null; message: string }> {
  const body = generatorErrorBodySchema.parse(await res.json());
  return { status: res.status, param: body.error.param, message: body.error.message };
}

function writeAdapterDir(dir: string, files: AdapterFiles): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter_config.json"), files.config);
  writeFileSync(join(dir, "adapter_model.safetensors"), files.weights);
}

describe("vLLM's LoRA admin API: served names, replaced in place", () => {
  let stack: Stack;
  let g: Service;
  let client: OpenAI;
  let loraDirs: string;
  let outside: string;
  const sha = new Map<number, string>();
  /** Greedy request whose output differs between v1 and v2. */
  const greedy = { prompt: "q5:", max_tokens: 24, temperature: 0, ignore_eos: true } as const;
  const text = async (model: string) =>
    (await client.completions.create({ model, ...greedy } as OpenAI.CompletionCreateParamsNonStreaming))
      .choices[0]?.text;

  before(async () => {
    loraDirs = mkdtempSync(join(tmpdir(), "loracast-lora-dirs-"));
    outside = mkdtempSync(join(tmpdir(), "loracast-outside-"));
    ({ stack, generator: g } = await startServingStack({ GENERATOR_LORA_DIRS: loraDirs }));
    client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: "unused", maxRetries: 0 });
    for (const seed of [1, 2]) {
      const res = await stack.publish(RUN, randomAdapter(LLAMA_CONFIG, seed, 4, ["q_proj", "v_proj"]));
      assert.equal(res.status, 201, await res.text());
    }
    await stack.waitActive(g, RUN, 2, 60_000);
    for (const v of [1, 2]) {
      const res = await client.completions.create({
        model: formatVersionRef(RUN, v),
        prompt: "x",
        max_tokens: 1,
      });
      assert.equal(res.model, formatVersionRef(RUN, v));
    }
    for (const r of (await stack.adapters(g)).data) if (r.sha256 !== null) sha.set(r.version, r.sha256);
    assert.equal(sha.size, 2);
    assert.notEqual(await text(`${RUN}@1`), await text(`${RUN}@2`), "v1 and v2 answer differently");
  });
  after(async () => {
    await stack?.stop();
    rmSync(loraDirs, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it("loads a version under a served name: listed, retrievable, usable as model, headers name the version", async () => {
    const load = await post(g, "load_lora_adapter", { lora_name: "policy", lora_path: `${RUN}@1` });
    assert.equal(load.status, 200);
    assert.equal(await load.text(), "Success: LoRA adapter 'policy' added successfully.");

    const listed = modelListSchema.shape.data.parse((await client.models.list()).data);
    const card = listed.find((m) => m.id === "policy");
    assert.deepEqual([card?.root, card?.parent], [`${RUN}@1`, BASE]);
    for (const id of ["policy", BASE, RUN, `${RUN}@1`])
      assert.equal((await client.models.retrieve(id)).id, id);
    await assert.rejects(client.models.retrieve("nope"), OpenAI.NotFoundError);

    const { data, response } = await client.completions
      .create({ model: "policy", ...greedy } as OpenAI.CompletionCreateParamsNonStreaming)
      .withResponse();
    assert.equal(data.model, "policy", "responses name the alias, as vLLM names the lora_name");
    assert.equal(response.headers.get("x-loracast-adapter-run"), RUN);
    assert.equal(response.headers.get("x-loracast-adapter-version"), "1");
    assert.equal(response.headers.get("x-loracast-adapter-sha256"), sha.get(1));
    assert.equal(data.choices[0]?.text, await text(`${RUN}@1`));

    const again = await post(g, "load_lora_adapter", { lora_name: "policy", lora_path: `${RUN}@1` });
    assert.equal(again.status, 200);
    assert.equal(await again.text(), "The lora adapter 'policy' has already been loaded.");
  });

  it("a second load with a new path replaces the name in place; a stream already running keeps its version", async () => {
    const stream = await client.completions.create({
      model: "policy",
      ...greedy,
      max_tokens: 200,
      n: 4,
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming);
    const chunks = stream[Symbol.asyncIterator]();
    const first = await chunks.next();
    assert.equal(first.done, false);

    const load = await post(g, "load_lora_adapter", { lora_name: "policy", lora_path: `${RUN}@2` });
    assert.equal(await load.text(), "Success: LoRA adapter 'policy' added successfully.");
    const { response } = await client.completions
      .create({ model: "policy", prompt: "x", max_tokens: 1 })
      .withResponse();
    assert.equal(response.headers.get("x-loracast-adapter-version"), "2", "new requests run on v2");
    assert.equal(response.headers.get("x-loracast-adapter-sha256"), sha.get(2));

    const texts = ["", "", "", ""];
    for (let c: IteratorResult<OpenAI.Completion> = first; !c.done; c = await chunks.next()) {
      assert.equal(c.value.model, "policy");
      for (const ch of c.value.choices) texts[ch.index] += ch.text;
    }
    const v1 = await client.completions.create({
      model: `${RUN}@1`,
      ...greedy,
      max_tokens: 200,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    for (const t of texts) assert.equal(t, v1.choices[0]?.text, "the running stream finished on v1");

    // The alias's pin moved to v2; v1's was released once the stream let go of its own.
    await eventually("v1 unpinned, v2 pinned", async () => {
      const rows = (await stack.adapters(g)).data.filter((r) => r.run === RUN);
      const pinned = rows.filter((r) => r.pinned).map((r) => r.version);
      return pinned.length === 1 && pinned[0] === 2 ? true : undefined;
    });

    const refused = await post(g, "load_lora_adapter", {
      lora_name: "policy",
      lora_path: `${RUN}@1`,
      load_inplace: false,
    });
    assert.deepEqual((await refusal(refused)).status, 400, "load_inplace: false keeps the name as it is");
    assert.equal(await text("policy"), await text(`${RUN}@2`));
  });

  it("takes <run>, a store URI of this generator's store, and null lora_path (the name is the path)", async () => {
    const cases: [string, string | null, string][] = [
      ["latest", RUN, `${RUN}@2`],
      ["by-uri", `s3://${BUCKET}/loracast/runs/${RUN}/versions/000000000001.json`, `${RUN}@1`],
      [`${RUN}@1`, null, `${RUN}@1`],
      ["org/latest", RUN, `${RUN}@2`],
    ];
    for (const [name, path, root] of cases) {
      const res = await post(g, "load_lora_adapter", { lora_name: name, lora_path: path });
      assert.equal(res.status, 200, `${name}: ${await res.text()}`);
      assert.equal((await client.models.retrieve(name)).id, name);
      const { response } = await client.completions
        .create({ model: name, prompt: "x", max_tokens: 1 })
        .withResponse();
      assert.equal(
        `${response.headers.get("x-loracast-adapter-run")}@${response.headers.get("x-loracast-adapter-version")}`,
        root,
      );
    }
    for (const name of ["latest", "by-uri", `${RUN}@1`, "org/latest"])
      assert.equal((await post(g, "unload_lora_adapter", { lora_name: name })).status, 200);
  });

  it("refuses bad names and paths with 4xx naming the field", async () => {
    const cases: [unknown, number, string | null][] = [
      [[], 400, null],
      [{ lora_name: "a", lora_path: 5 }, 400, "lora_path"],
      [{ lora_name: "a", lora_path: `${RUN}@1`, load_inplace: "yes" }, 400, "load_inplace"],
      [{ lora_name: "a", lora_path: "not a path!" }, 400, "lora_path"],
      [
        { lora_name: "a", lora_path: `s3://other-bucket/loracast/runs/${RUN}/versions/000000000001.json` },
        400,
        "lora_path",
      ],
      [
        { lora_name: "a", lora_path: `s3://${BUCKET}/elsewhere/runs/${RUN}/versions/000000000001.json` },
        400,
        "lora_path",
      ],
      [{ lora_name: "a", lora_path: "no-such-run" }, 404, "lora_path"],
      [{ lora_name: "a", lora_path: `${RUN}@99` }, 404, "lora_path"],
      [{ lora_name: "a", lora_path: join(outside, "x") }, 404, "lora_path"],
      [{ lora_name: "no-version@x" }, 400, "lora_name"],
      [{ lora_name: BASE, lora_path: `${RUN}@1` }, 400, "lora_name"],
      [{ lora_name: RUN, lora_path: `${RUN}@1` }, 400, "lora_name"],
      [{ lora_name: `${RUN}@2`, lora_path: `${RUN}@1` }, 400, "lora_name"],
      [{ lora_name: "bad name", lora_path: `${RUN}@1` }, 400, "lora_name"],
      [{ lora_name: "x".repeat(129), lora_path: `${RUN}@1` }, 400, "lora_name"],
      [{ lora_path: `${RUN}@1` }, 400, "lora_name"],
    ];
    for (const [body, status, param] of cases) {
      const r = await refusal(await post(g, "load_lora_adapter", body));
      assert.deepEqual([r.status, r.param], [status, param], `${JSON.stringify(body)}: ${r.message}`);
    }
    const intId = await refusal(await post(g, "unload_lora_adapter", { lora_name: "a", lora_int_id: 3 }));
    assert.deepEqual([intId.status, intId.param], [400, "lora_int_id"]);
    const unknown = await refusal(await post(g, "unload_lora_adapter", { lora_name: "never-loaded" }));
    assert.deepEqual(unknown, {
      status: 404,
      param: "lora_name",
      message: "The lora adapter 'never-loaded' cannot be found.",
    });
  });

  it("loads a local PEFT directory inside GENERATOR_LORA_DIRS only, verified like a store adapter", async () => {
    const files = randomAdapter(LLAMA_CONFIG, 3, 4, ["q_proj"]);
    writeAdapterDir(join(loraDirs, "mine"), files);
    writeAdapterDir(join(outside, "theirs"), files);
    symlinkSync(join(outside, "theirs"), join(loraDirs, "escape"));
    const bad = randomAdapter(LLAMA_CONFIG, 4, 4, ["q_proj"]);
    const nan = new Float32Array(bad.weights.buffer.slice(bad.weights.byteLength - 4));
    nan[0] = Number.NaN;
    const weights = new Uint8Array(bad.weights);
    weights.set(new Uint8Array(nan.buffer), weights.byteLength - 4);
    writeAdapterDir(join(loraDirs, "nan"), { config: bad.config, weights });

    const load = await post(g, "load_lora_adapter", {
      lora_name: "local",
      lora_path: join(loraDirs, "mine"),
    });
    assert.equal(load.status, 200, await load.text());
    const { data, response } = await client.completions
      .create({ model: "local", prompt: "x", max_tokens: 2 })
      .withResponse();
    assert.equal(data.model, "local");
    assert.equal(
      response.headers.get("x-loracast-adapter-sha256"),
      createHash("sha256").update(files.weights).digest("hex"),
    );
    assert.deepEqual(
      [response.headers.get("x-loracast-adapter-run"), response.headers.get("x-loracast-adapter-version")],
      ["none", "none"],
    );
    for (const [dir, status] of [
      [join(outside, "theirs"), 400],
      [join(loraDirs, "escape"), 400],
      [join(loraDirs, "nan"), 422],
    ] as const) {
      const r = await refusal(await post(g, "load_lora_adapter", { lora_name: "other", lora_path: dir }));
      assert.deepEqual([r.status, r.param], [status, "lora_path"], r.message);
    }
    assert.equal((await post(g, "unload_lora_adapter", { lora_name: "local" })).status, 200);
  });

  it("a rollback that revokes an alias's version makes requests through it 410, like the exact name", async () => {
    const rb = await fetch(`${stack.trainer.url}/v1/runs/${RUN}/rollback`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ version: 1 }),
    });
    assert.equal(rb.status, 200, await rb.text());
    await stack.waitState(g, RUN, 2, "revoked", 60_000);
    const r = await refusal(await post(g, "completions", { model: "policy", prompt: "x", max_tokens: 1 }));
    assert.deepEqual([r.status, r.param], [410, "model"], r.message);
    assert.ok(!(await client.models.list()).data.some((m) => m.id === "policy"), "not listed once revoked");
  });

  it("unload removes the name and releases its pin", async () => {
    const res = await post(g, "unload_lora_adapter", { lora_name: "policy" });
    assert.equal(await res.text(), "Success: LoRA adapter 'policy' removed successfully.");
    await assert.rejects(
      client.completions.create({ model: "policy", prompt: "x", max_tokens: 1 }),
      OpenAI.NotFoundError,
    );
    await assert.rejects(client.models.retrieve("policy"), OpenAI.NotFoundError);
    const rows = (await stack.adapters(g)).data.filter((r) => r.run === RUN);
    assert.deepEqual(
      rows.filter((r) => r.pinned).map((r) => r.version),
      [],
    );
  });

  it("a request naming a version the store lacks leaves nothing behind, so it cannot reserve a name", async () => {
    for (let v = 5; v < 25; v++) {
      const res = await fetch(`${g.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: `ghostrun@${v}`, prompt: "x", max_tokens: 1 }),
      });
      assert.equal(res.status, 404);
    }
    const ghost = await post(g, "load_lora_adapter", { lora_name: "ghostrun", lora_path: `ghostrun@5` });
    assert.equal(ghost.status, 404);
    assert.deepEqual(
      (await stack.adapters(g)).data.filter((r) => r.run === "ghostrun"),
      [],
      "no records of made-up versions",
    );
    const load = await post(g, "load_lora_adapter", { lora_name: "ghostrun", lora_path: `${RUN}@1` });
    assert.equal(load.status, 200, await load.text());
    assert.equal((await post(g, "unload_lora_adapter", { lora_name: "ghostrun" })).status, 200);
  });

  it("needs the admin token when one is set, and is disabled on a non-loopback bind without one", async () => {
    // Lifecycle-only generators (no engine): the admin API pins store versions without one.
    const lifecycleOnly = { GENERATOR_MODEL_DIR: "", GENERATOR_BASE_CONFIG: LLAMA_CONFIG };
    const guarded = await stack.startGenerator("guarded", {
      ...lifecycleOnly,
      GENERATOR_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    const open = await stack.startGenerator("open", { ...lifecycleOnly, GENERATOR_HOST: "0.0.0.0" });
    try {
      const body = { lora_name: "p", lora_path: `${RUN}@1` };
      assert.equal((await post(guarded, "load_lora_adapter", body)).status, 401);
      const wrong = await post(guarded, "load_lora_adapter", body, { authorization: "Bearer wrong-token" });
      assert.equal(wrong.status, 403);
      const right = await post(guarded, "load_lora_adapter", body, {
        authorization: `Bearer ${ADMIN_TOKEN}`,
      });
      assert.equal(right.status, 200, await right.text());
      const unload = await post(guarded, "unload_lora_adapter", { lora_name: "p" });
      assert.equal(unload.status, 401, "unload needs the token too");

      const url = open.url.replace("0.0.0.0", "127.0.0.1");
      const denied = await refusal(await post({ ...open, url } as Service, "load_lora_adapter", body));
      assert.equal(denied.status, 403);
      assert.match(denied.message, /GENERATOR_ADMIN_TOKEN/);
    } finally {
      await Promise.all([guarded.stop(), open.stop()]);
    }
  });
});
