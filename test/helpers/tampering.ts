/**
 * What the tampering journeys share: the attacker's handle on the bucket (plain writes, no key),
 * publishing through the trainer while remembering what it published, and the agreement check
 * between the trainer's record and each generator's view.
 */
import assert from "node:assert/strict";
import { LLAMA_CONFIG } from "@loracast/dev-support/fixtures";
import type { Service } from "@loracast/dev-support/supervisor";
import { formatVersionRef } from "@loracast/shared/manifest";
import { AdapterStore, S3ObjectStore } from "@loracast/shared/store";
import { publishResultSchema, type RunVersions, runVersionsSchema } from "@loracast/shared/trainer-api";
import { randomAdapter } from "./adapters.ts";
import { s3Settings } from "./s3.ts";
import { type Stack, TOKEN } from "./stack.ts";

/** JSON as the trainer writes records: two-space indented, one trailing newline. */
export const encodeJson = (v: unknown): Uint8Array =>
  new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);
/** Parses stored JSON bytes (an absent object as empty, which throws). */
export const decodeJson = (b: Uint8Array | null): unknown =>
  JSON.parse(new TextDecoder().decode(b ?? new Uint8Array()));

export interface TamperKit {
  /** The attacker's handle on the stack's bucket: plain writes, no signing key. */
  bucket: AdapterStore;
  /** sha256 of adapter_model.safetensors of each version the trainer published, from its answers. */
  published: Map<number, string>;
  /** The trainer's `GET /v1/runs/:run/versions`. */
  trainerVersions(): Promise<RunVersions>;
  /** A generator's /metrics text. */
  metrics(g: Service): Promise<string>;
  /** Publishes a random rank-4 q/v adapter (seeded) through the trainer; returns its version. */
  publish(seed: number): Promise<number>;
  /** Rolls the run back to `version` through the trainer (with the token); asserts 200. */
  rollback(version: number): Promise<void>;
  /**
   * Asserts that the trainer's current version is `version`, and that every generator given serves
   * it as the run with the trainer's sha256 and holds nothing the trainer did not publish.
   */
  agree(generators: Service[], version: number): Promise<void>;
}

/** The kit for `run` on `stack`. */
export function tamperKit(stack: Stack, run: string): TamperKit {
  const published = new Map<number, string>();
  const trainerVersions = async () =>
    runVersionsSchema.parse(await (await fetch(`${stack.trainer.url}/v1/runs/${run}/versions`)).json());
  return {
    bucket: new AdapterStore(new S3ObjectStore(s3Settings(stack.s3.url, "loracast"))),
    published,
    trainerVersions,
    metrics: async (g) => (await fetch(`${g.url}/metrics`)).text(),
    publish: async (seed) => {
      const res = await stack.publish(run, randomAdapter(LLAMA_CONFIG, seed, 4, ["q_proj", "v_proj"]));
      const json = await res.json();
      assert.equal(res.status, 201, JSON.stringify(json));
      const body = publishResultSchema.parse(json);
      published.set(body.version, body.sha256);
      return body.version;
    },
    rollback: async (version) => {
      const res = await fetch(`${stack.trainer.url}/v1/runs/${run}/rollback`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ version }),
      });
      assert.equal(res.status, 200, await res.clone().text());
    },
    agree: async (generators, version) => {
      const record = await trainerVersions();
      assert.equal(record.current, version, JSON.stringify(record.versions));
      assert.equal(record.versions.find((v) => v.version === version)?.sha256, published.get(version));
      for (const g of generators) {
        const list = await stack.adapters(g);
        assert.deepEqual(list.active[run], { version, sha256: published.get(version) }, g.name);
        for (const a of list.data) {
          if (a.state === "active" || a.state === "staged" || a.state === "retired")
            assert.equal(
              a.sha256,
              published.get(a.version),
              `${g.name}: ${formatVersionRef(run, a.version)} is the trainer's`,
            );
        }
      }
    },
  };
}
