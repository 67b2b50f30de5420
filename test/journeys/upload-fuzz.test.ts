/**
 * Issue 15: thousands of mutated adapter uploads against one real stack (embedded S3 + trainer).
 * Every upload comes from a seeded RNG (`FUZZ_SEED` replays a run; the failing upload's index and
 * mutation are named). No response may be a 5xx, the trainer stays up and answers /healthz, every
 * 201 publishes finite, strictly decodable weights whose blobs exist, and afterwards the store holds
 * no partial objects (every blob referenced, every manifest's blobs present).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import { versionManifestSchema } from "@loracast/shared/manifest";
import { createRng, type Rng } from "@loracast/shared/random";
import {
  decodeSafetensors,
  encodeSafetensors,
  firstNonFinite,
  type TensorInput,
  toFloat16,
} from "@loracast/shared/safetensors";
import { S3ObjectStore, sha256Hex } from "@loracast/shared/store";
import { publishResultSchema } from "@loracast/shared/trainer-api";
import { type AdapterFiles, randomAdapter } from "../helpers/adapters.ts";
import { s3Settings } from "../helpers/s3.ts";
import { type Stack, startStack, TOKEN } from "../helpers/stack.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 15);
const UPLOADS = Number(process.env.FUZZ_UPLOADS ?? 2000);
const CONCURRENCY = 8;
const enc = new TextEncoder();
const dec = new TextDecoder();

type Float = "F32" | "F16" | "BF16";
/** NaN, +Inf, -Inf bit patterns per float dtype. */
const NON_FINITE: Record<Float, number[]> = {
  F32: [0x7fc00000, 0x7f800000, 0xff800000, 0x7f800001],
  F16: [0x7e00, 0x7c00, 0xfc00, 0x7c01],
  BF16: [0x7fc0, 0x7f80, 0xff80, 0x7f81],
};

/** The base adapter re-encoded in `dtype` (F16 rounded, BF16 truncated from F32). */
function inDtype(base: AdapterFiles, dtype: Float): AdapterFiles {
  if (dtype === "F32") return base;
  const file = decodeSafetensors(base.weights);
  if (!file.ok) throw file.error;
  const tensors: Record<string, TensorInput> = {};
  for (const [name, t] of file.value.tensors) {
    const f32 = t.array() as Float32Array;
    const data =
      dtype === "F16"
        ? toFloat16(f32)
        : Uint16Array.from(
            new Uint32Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength)),
            (u) => u >>> 16,
          );
    tensors[name] = { dtype, shape: t.shape, data };
  }
  return { config: base.config, weights: encodeSafetensors(tensors, { format: "pt" }) };
}

interface Split {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  data: Uint8Array;
}
function split(weights: Uint8Array): Split {
  const len = Number(new DataView(weights.buffer, weights.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(dec.decode(weights.subarray(8, 8 + len))), data: weights.subarray(8 + len) };
}
function join(headerText: string, data: Uint8Array): Uint8Array {
  const h = enc.encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)] as T;
const HUGE = [2 ** 53, 2 ** 64, 1e308, -1, 1.5, 4294967296, 2 ** 53 + 2, -0];

interface Upload {
  what: string;
  parts: [string, Uint8Array][];
}

/** One mutated upload of `bases[dtype]`, drawn from `rng`. */
function mutate(rng: Rng, bases: Record<Float, AdapterFiles>): Upload {
  const dtype = pick(rng, ["F32", "F16", "BF16"] as const);
  const base = bases[dtype];
  let config: Uint8Array = base.config;
  let weights: Uint8Array = new Uint8Array(base.weights);
  const { header, data } = split(weights);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const dataStart = weights.length - data.length;
  const kind = rng.int(12);
  let what: string;
  const entry = () => header[pick(rng, names)] as Split["header"][string];
  switch (kind) {
    case 0: {
      const n = 1 + rng.int(8);
      for (let i = 0; i < n; i++) {
        const at = rng.int(dataStart);
        weights[at] = (weights[at] as number) ^ (1 << rng.int(8));
      }
      what = `${n} bit flips in the header`;
      break;
    }
    case 1: {
      const n = 1 + rng.int(16);
      for (let i = 0; i < n; i++) {
        const at = dataStart + rng.int(data.length);
        weights[at] = (weights[at] as number) ^ (1 << rng.int(8));
      }
      what = `${n} bit flips in the data`;
      break;
    }
    case 2: {
      const to = rng.int(weights.length);
      weights = weights.slice(0, to);
      what = `truncated to ${to} bytes`;
      break;
    }
    case 3: {
      const extra = new Uint8Array(1 + rng.int(64)).map(() => rng.int(256));
      weights = new Uint8Array([...weights, ...extra]);
      what = `extended by ${extra.length} bytes`;
      break;
    }
    case 4: {
      const sub = rng.int(7);
      const e = entry();
      if (sub === 0)
        e.dtype = pick(rng, ["F64", "I8", "U8", "BOOL", "F8_E4M3", "Q4", "f32", "", "I64", "BF16", "F16"]);
      else if (sub === 1) e.shape = e.shape.map((d) => (rng.int(2) === 0 ? d : d + pick(rng, [-1, 1, d])));
      else if (sub === 2)
        e.shape = pick(rng, [[], [0], [1], [...e.shape, 1], e.shape.slice().reverse(), [pick(rng, HUGE), 1]]);
      else if (sub === 3) {
        const [b = 0, en = 0] = e.data_offsets;
        const shift = pick(rng, [-4, 4, -2, 2]);
        e.data_offsets = [Math.max(0, b + shift), en + shift];
      } else if (sub === 4) e.data_offsets = [pick(rng, [0, data.length, data.length + 8]), pick(rng, HUGE)];
      else if (sub === 5) e.data_offsets = pick(rng, [[], [0], [1, 0], [0, 0, 0], ["0", "4"] as never]);
      else
        (e as Record<string, unknown>)[pick(rng, ["dtype", "shape", "data_offsets"])] = pick(rng, [
          null,
          "x",
          {},
          Number.POSITIVE_INFINITY,
        ]);
      what = `header edit ${sub} (${JSON.stringify(e).slice(0, 80)})`;
      weights = join(JSON.stringify(header), data);
      break;
    }
    case 5: {
      // Duplicate keys, huge numbers and odd JSON, written as text.
      const text = JSON.stringify(header);
      const sub = rng.int(5);
      const name = pick(rng, names);
      const body = JSON.stringify(header[name]);
      let edited: string;
      if (sub === 0) edited = text.replace(/^\{/, `{${JSON.stringify(name)}:${body},`);
      else if (sub === 1)
        edited = text.replace(
          /"data_offsets":\[(\d+),/,
          `"data_offsets":[${pick(rng, ["1e999", "18446744073709551616", "-0", "0.0", "1E2"])},`,
        );
      else if (sub === 2)
        edited = text.replace(
          /"shape":\[(\d+)/,
          `"shape":[${pick(rng, ["1e999", "99999999999999999999", "-1", "NaN", "Infinity"])}`,
        );
      else if (sub === 3)
        edited = text.replace(
          /\}$/,
          `,"__metadata__":${pick(rng, ['{"a":1}', '"x"', "[]", '{"format":"pt","format":"np"}'])}}`,
        );
      else edited = `${text}${pick(rng, [" ", "\u0000", "x", "}", "\t\n"])}`;
      what = `header text edit ${sub}`;
      weights = join(edited, data);
      break;
    }
    case 6: {
      const t = pick(rng, names);
      const e = header[t] as Split["header"][string];
      const width = dtype === "F32" ? 4 : 2;
      const [b = 0, en = 0] = e.data_offsets;
      const count = (en - b) / width;
      const n = 1 + rng.int(3);
      const view = new DataView(weights.buffer);
      for (let i = 0; i < n; i++) {
        const at = dataStart + b + rng.int(count) * width;
        const bits = pick(rng, NON_FINITE[dtype]);
        if (width === 4) view.setUint32(at, bits, true);
        else view.setUint16(at, bits, true);
      }
      what = `${n} non-finite values in ${dtype} ${t}`;
      break;
    }
    case 7: {
      const c = JSON.parse(dec.decode(base.config)) as Record<string, unknown>;
      const sub = rng.int(9);
      if (sub === 0) config = enc.encode(dec.decode(base.config).slice(0, rng.int(base.config.length)));
      else if (sub === 1) c.r = pick(rng, [0, -1, 1e9, 2 ** 31, 1e308, 1.5, "8", null, 3]);
      else if (sub === 2)
        c.target_modules = pick(rng, [[], ["nope"], "q_proj", [1], null, ["k_proj"], "all-linear"]);
      else if (sub === 3) c.peft_type = pick(rng, ["LOHA", "lora", "", null, 1, "IA3"]);
      else if (sub === 4) c.lora_alpha = pick(rng, [1e39, -1, 0, 1e308, "x", null, 3.4e38]);
      else if (sub === 5) delete c[pick(rng, ["r", "peft_type", "target_modules", "lora_alpha"])];
      else if (sub === 6)
        config = enc.encode(pick(rng, ["", "null", "[]", "{", '{"r":1e999}', "\u0000", "{}"]));
      else if (sub === 7) c.use_rslora = pick(rng, [true, "yes", 1]);
      else c.rank_pattern = pick(rng, [{ q_proj: 1e9 }, { x: -1 }, "x", { q_proj: 0 }]);
      if (sub !== 0 && sub !== 6) config = enc.encode(JSON.stringify(c));
      what = `config edit ${sub}: ${dec.decode(config).slice(0, 100)}`;
      break;
    }
    case 8: {
      const sub = rng.int(5);
      const parts: [string, Uint8Array][] =
        sub === 0
          ? [["adapter_model.safetensors", weights]]
          : sub === 1
            ? [["adapter_config.json", config]]
            : sub === 2
              ? []
              : sub === 3
                ? [
                    ["adapter_config.json", config],
                    ["adapter_model.safetensors", weights],
                    ["adapter_model.safetensors", weights],
                  ]
                : [
                    ["adapter_config.json", config],
                    ["weights", weights],
                  ];
      return { what: `parts ${sub}: ${parts.map((p) => p[0]).join(",") || "none"}`, parts };
    }
    case 9: {
      // A structurally valid file with a lying dtype (same bytes, other width), re-laid-out.
      const e = entry();
      const to = pick(rng, ["F32", "F16", "BF16", "F64", "I32"]);
      e.dtype = to;
      weights = join(JSON.stringify(header), data);
      what = `dtype relabelled ${dtype} -> ${to}`;
      break;
    }
    case 10: {
      // Large-but-finite values, which with the config's scaling may overflow float32.
      const view = new DataView(weights.buffer);
      const at = dataStart + rng.int(data.length >> 2) * 4;
      if (dtype === "F32")
        view.setFloat32(at - ((at - dataStart) % 4), pick(rng, [3.4e38, -3.4e38, 1e30]), true);
      else view.setUint16(at, dtype === "F16" ? 0x7bff : 0x7f7f, true);
      what = `max-magnitude finite value in ${dtype}`;
      break;
    }
    default:
      what = `clean ${dtype}`;
  }
  return {
    what,
    parts: [
      ["adapter_config.json", config],
      ["adapter_model.safetensors", weights],
    ],
  };
}

describe("upload fuzz: mutated adapter uploads never crash the trainer, 5xx or leave partial objects", () => {
  let stack: Stack;
  let objects: S3ObjectStore;
  before(async () => {
    stack = await startStack({ generators: 0 });
    objects = new S3ObjectStore(s3Settings(stack.s3.url, "loracast", { maxAttempts: 1 }));
  });
  after(async () => {
    objects?.client.destroy();
    await stack?.stop();
  });

  it(`${UPLOADS} seeded uploads (seed ${SEED})`, { timeout: 240_000 }, async () => {
    const started = Date.now();
    const f32 = randomAdapter(LLAMA_CONFIG, SEED, 2, ["q_proj", "v_proj"], 0.2);
    const bases = { F32: f32, F16: inDtype(f32, "F16"), BF16: inDtype(f32, "BF16") };
    const rng = createRng(SEED);
    // Drawn up front, in order, so the sequence does not depend on response timing.
    const uploads = Array.from({ length: UPLOADS }, () => mutate(rng, bases));
    const statuses = new Map<number, number>();
    const published: { i: number; manifestKey: string }[] = [];
    const failures: string[] = [];
    let next = 0;
    // A run per worker: publishes to one run are serialised, and its version listing grows with it.
    const url = (w: number) => `${stack.trainer.url}/v1/runs/fuzz-${w}/adapters`;

    const worker = async (w: number) => {
      while (next < uploads.length && failures.length < 5) {
        const i = next++;
        const u = uploads[i] as Upload;
        const form = new FormData();
        for (const [name, bytes] of u.parts) form.append(name, new Blob([bytes]), name);
        let res: Response;
        try {
          res = await fetch(url(w), {
            method: "POST",
            headers: { authorization: `Bearer ${TOKEN}` },
            body: form,
          });
        } catch (e) {
          failures.push(`upload ${i} (${u.what}): request failed: ${(e as Error).message}`);
          continue;
        }
        const body = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500) {
          const logged = stack.trainer.logs.filter((l) => l.level === "error").slice(-1);
          failures.push(
            `upload ${i} (${u.what}): ${res.status} ${body.slice(0, 300)} ${JSON.stringify(logged)}`,
          );
        } else if (res.status === 201)
          published.push({ i, manifestKey: publishResultSchema.parse(JSON.parse(body)).manifestKey });
        else if (res.status !== 400)
          failures.push(`upload ${i} (${u.what}): unexpected ${res.status} ${body.slice(0, 200)}`);
        if (i % 100 === 0) {
          if (stack.trainer.proc.exitCode !== null || stack.trainer.proc.signalCode !== null)
            failures.push(`trainer exited after upload ${i}`);
          const h = await fetch(`${stack.trainer.url}/healthz`).catch((e: Error) => e);
          if (h instanceof Error || h.status !== 200)
            failures.push(`healthz after upload ${i}: ${h instanceof Error ? h.message : h.status}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
    const uploaded = Date.now();
    assert.deepEqual(failures, [], `replay with FUZZ_SEED=${SEED}`);
    assert.equal(stack.trainer.proc.exitCode, null, "the trainer is alive");
    assert.equal((await fetch(`${stack.trainer.url}/healthz`)).status, 200);

    // Every 201 published strictly decodable, finite weights whose blobs are all in the store.
    const keys = (await objects.list("")).filter((k) => !k.startsWith(".probe"));
    const keySet = new Set(keys);
    const referenced = new Set<string>();
    const manifestKeys = keys.filter((k) => /^runs\/[^/]+\/versions\/\d+\.json$/.test(k));
    const byKey = new Map(published.map((p) => [p.manifestKey, p.i]));
    for (const p of published)
      assert.ok(keySet.has(p.manifestKey), `upload ${p.i}: manifest ${p.manifestKey} missing`);
    // Each blob is checked once (by content address), manifests eight at a time.
    const checkedBlobs = new Set<string>();
    const checkManifest = async (mk: string) => {
      const who = `manifest ${mk} (upload ${byKey.get(mk) ?? "?"}: ${uploads[byKey.get(mk) ?? -1]?.what ?? "?"})`;
      const m = versionManifestSchema.parse(JSON.parse(dec.decode((await objects.get(mk)) as Uint8Array)));
      for (const f of m.adapter.files) {
        referenced.add(f.blob);
        if (checkedBlobs.has(`${f.name} ${f.blob}`)) continue;
        checkedBlobs.add(`${f.name} ${f.blob}`);
        const bytes = await objects.get(f.blob);
        assert.ok(bytes !== null, `${who}: blob ${f.blob} missing`);
        assert.equal(sha256Hex(bytes), f.sha256, `${who}: blob ${f.blob} altered`);
        assert.equal(bytes.byteLength, f.bytes, `${who}: blob ${f.blob} size`);
        if (f.name !== "adapter_model.safetensors") continue;
        const file = decodeSafetensors(bytes);
        assert.ok(file.ok, `${who}: weights do not decode: ${file.ok ? "" : file.error.message}`);
        for (const t of file.value.tensors.values()) {
          const bad = firstNonFinite(t);
          assert.equal(bad, null, `${who}: ${t.name} holds ${bad?.value} at ${bad?.index}`);
        }
      }
    };
    const queue = [...manifestKeys];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let mk = queue.shift(); mk !== undefined; mk = queue.shift()) await checkManifest(mk);
      }),
    );
    assert.equal(manifestKeys.length, published.length, "one manifest per 201, no more");
    // No partial objects: every blob is referenced by a manifest. (The embedded S3 server cannot
    // list multipart uploads, and these files are far below the multipart threshold anyway.)
    const orphans = keys.filter((k) => k.startsWith("blobs/") && !referenced.has(k));
    assert.deepEqual(orphans, [], "blobs no manifest refers to");
    const known =
      /^(blobs\/sha256\/[0-9a-f]{64}|runs\/fuzz-\d\/(versions\/\d+\.json|head\.json)|signatures\/.+)$/;
    assert.deepEqual(
      keys.filter((k) => !known.test(k)),
      [],
      "only blobs, manifests, the head and signature envelopes",
    );
    const summary = [...statuses]
      .sort((a, b) => a[0] - b[0])
      .map(([s, n]) => `${s}×${n}`)
      .join(" ");
    console.log(
      `upload fuzz seed ${SEED}: ${UPLOADS} uploads, statuses ${summary}, ${manifestKeys.length} versions verified, ${keys.length} store objects, ${((Date.now() - started) / 1000).toFixed(1)} s (uploads ${((uploaded - started) / 1000).toFixed(1)} s)`,
    );
  });
});
