/**
 * Issue 15, item 7 (aliases): vLLM-style `load_lora_adapter` aliases pin their weights, which the
 * cache never evicts, so before this fix only GENERATOR_MAX_LORA_ALIASES (a count) bounded them: 13
 * aliases held 1.33 MB against a 0.25 MiB CACHE_MAX_MB. Real processes (embedded S3, trainer, one
 * lifecycle-only generator with a byte bound that fits two 8 KiB adapters but not three): a load that
 * would take what no eviction frees past CACHE_MAX_MB is refused with 409, the name keeps serving
 * what it served, the refusal shows in /metrics and the log, and local directories count the same.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import type { Service } from "@loracast/dev-support/supervisor";
import { generatorErrorBodySchema, modelCardSchema } from "@loracast/shared/generator-api";
import { formatVersionRef } from "@loracast/shared/manifest";
import { type AdapterFiles, randomAdapter } from "../helpers/adapters.ts";
import { type Stack, startStack } from "../helpers/stack.ts";

const RUN = "bounded";
/** 18,874 bytes: the active version and one alias (8,192 bytes each) fit, a third adapter does not. */
const CACHE_MAX_MB = "0.018";
const MAX_BYTES = Math.floor(0.018 * 1024 * 1024);
const ADAPTER_BYTES = 8192;

const post = (g: Service, path: string, body: unknown) =>
  fetch(`${g.url}/v1/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** The value of an unlabelled (or exactly labelled) sample in /metrics; null when absent. */
async function metric(g: Service, sample: string): Promise<number | null> {
  const text = await (await fetch(`${g.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? null : Number(line.slice(sample.length + 1));
}

describe("load_lora_adapter aliases stay within CACHE_MAX_MB", () => {
  let stack: Stack;
  let g: Service;
  let loraDirs: string;
  const writeDir = (name: string, files: AdapterFiles): string => {
    const dir = join(loraDirs, name);
    mkdirSync(dir);
    writeFileSync(join(dir, "adapter_config.json"), files.config);
    writeFileSync(join(dir, "adapter_model.safetensors"), files.weights);
    return dir;
  };
  const root = async (name: string) =>
    modelCardSchema.parse(await (await fetch(`${g.url}/v1/models/${name}`)).json()).root;
  const refusal = async (res: Response) => {
    const body = generatorErrorBodySchema.parse(await res.json());
    return { status: res.status, ...body.error };
  };

  before(async () => {
    loraDirs = mkdtempSync(join(tmpdir(), "loracast-alias-bounds-"));
    stack = await startStack({
      generators: 1,
      generatorEnv: { CACHE_MAX_MB, GENERATOR_LORA_DIRS: loraDirs },
    });
    g = stack.generators[0] as Service;
    for (let seed = 1; seed <= 4; seed++) {
      const res = await stack.publish(RUN, randomAdapter(LLAMA_CONFIG, seed, 4, ["q_proj", "v_proj"]));
      assert.equal(res.status, 201, await res.text());
    }
    const active = await stack.waitActive(g, RUN, 4, 60_000);
    assert.equal(active.bytes, ADAPTER_BYTES);
  });
  after(async () => {
    await stack?.stop();
    rmSync(loraDirs, { recursive: true, force: true });
  });

  it("loads an alias that fits, and refuses with 409 each one past the bound, naming CACHE_MAX_MB", async () => {
    const ok = await post(g, "load_lora_adapter", { lora_name: "a", lora_path: `${RUN}@1` });
    assert.equal(ok.status, 200, await ok.text());
    for (const v of [2, 3]) {
      const r = await refusal(
        await post(g, "load_lora_adapter", { lora_name: `b${v}`, lora_path: formatVersionRef(RUN, v) }),
      );
      assert.deepEqual([r.status, r.code, r.type], [409, "adapter_cache_full", "invalid_request_error"]);
      assert.match(r.message, /CACHE_MAX_MB/);
      assert.match(r.message, new RegExp(`needs ${ADAPTER_BYTES} more bytes`));
      assert.match(r.message, new RegExp(`hold ${2 * ADAPTER_BYTES} of the ${MAX_BYTES} bytes`));
      assert.match(r.message, /unload an adapter/);
      assert.equal((await fetch(`${g.url}/v1/models/b${v}`)).status, 404, "a refused name is not served");
    }
    assert.equal(await metric(g, 'loracast_lora_alias_loads_refused_total{reason="cache_bytes"}'), 2);
    const held = await metric(g, "loracast_adapter_cache_bytes");
    assert.ok(held !== null && held <= MAX_BYTES, `${held} bytes held, bound ${MAX_BYTES}`);
    assert.equal(await metric(g, "loracast_adapter_cache_unevictable_bytes"), 2 * ADAPTER_BYTES);
    const logged = g.logs.filter((l) => l.msg === "lora alias refused");
    assert.deepEqual(
      logged.map((l) => [l.name, l.kind, l.needed, l.held, l.maxBytes]),
      [
        ["b2", "bytes", ADAPTER_BYTES, 2 * ADAPTER_BYTES, MAX_BYTES],
        ["b3", "bytes", ADAPTER_BYTES, 2 * ADAPTER_BYTES, MAX_BYTES],
      ],
    );
  });

  it("refuses a replacement that does not fit; the name keeps serving what it served", async () => {
    const big = writeDir("big", randomAdapter(LLAMA_CONFIG, 5, 8, ["q_proj", "v_proj"]));
    const r = await refusal(await post(g, "load_lora_adapter", { lora_name: "a", lora_path: big }));
    assert.deepEqual([r.status, r.code], [409, "adapter_cache_full"], r.message);
    assert.equal(await root("a"), `${RUN}@1`);
    // The same size moves the pin: v1 is released as v2 is taken.
    const moved = await post(g, "load_lora_adapter", { lora_name: "a", lora_path: `${RUN}@2` });
    assert.equal(moved.status, 200, await moved.text());
    assert.equal(await root("a"), `${RUN}@2`);
    const pinned = (await stack.adapters(g)).data.filter((row) => row.pinned).map((row) => row.version);
    assert.deepEqual(pinned, [2]);
  });

  it("counts local PEFT directories toward the same bytes", async () => {
    assert.equal((await post(g, "unload_lora_adapter", { lora_name: "a" })).status, 200);
    const small = writeDir("small", randomAdapter(LLAMA_CONFIG, 6, 4, ["q_proj"]));
    const local = await post(g, "load_lora_adapter", { lora_name: "local", lora_path: small });
    assert.equal(local.status, 200, await local.text());
    const r = await refusal(await post(g, "load_lora_adapter", { lora_name: "b", lora_path: `${RUN}@3` }));
    assert.deepEqual([r.status, r.code], [409, "adapter_cache_full"], r.message);
    const held = await metric(g, "loracast_adapter_cache_bytes");
    assert.ok(held !== null && held <= MAX_BYTES, `${held} bytes held, bound ${MAX_BYTES}`);
    assert.equal((await post(g, "unload_lora_adapter", { lora_name: "local" })).status, 200);
    const b = await post(g, "load_lora_adapter", { lora_name: "b", lora_path: `${RUN}@3` });
    assert.equal(b.status, 200, "room is back once the directory is unloaded");
    assert.equal(await metric(g, 'loracast_lora_alias_loads_refused_total{reason="cache_bytes"}'), 4);
  });
});
