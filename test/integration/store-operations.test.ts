/**
 * Every store operation the services use, on the embedded server, with contents shaped like a
 * field deployment: several runs whose objects all sit two levels below `runs/<run>/` (versions,
 * rollbacks, checkpoints), run names that sort differently by path and by key (`digits`,
 * `digits-1`, `digits0v2`), a multipart checkpoint and more than 1000 blobs, so that every listing
 * pages. Each answer is compared with the in-memory store holding the same objects.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ListObjectsCommand, ListObjectsV2Command, S3ServiceException } from "@aws-sdk/client-s3";
import { WEIGHTS_FILE } from "@loracast/shared/manifest";
import {
  AdapterStore,
  checkpointKey,
  latestCheckpointKey,
  MemoryObjectStore,
  S3ObjectStore,
} from "@loracast/shared/store";
import { BUCKET, s3Settings, startS3 } from "../helpers/s3.ts";

const RUNS = ["digits", "digits-1", "digits0v2", "a", "z9"];
const VERSIONS = 24;
const EXTRA_BLOBS = 1100;
const PREFIX = "loracast";
const CREATED = "2026-11-30T00:00:00.000Z";

/** Deterministic bytes, so both stores get identical manifests and blobs. */
const bytesOf = (seed: string, n: number): Uint8Array => {
  const out = new Uint8Array(n);
  let block = createHash("sha256").update(seed).digest();
  for (let i = 0; i < n; i += block.length) {
    out.set(block.subarray(0, Math.min(block.length, n - i)), i);
    block = createHash("sha256").update(block).digest();
  }
  return out;
};

describe("store operations on the embedded server with realistic contents", () => {
  let s3: Awaited<ReturnType<typeof startS3>>;
  let remote: S3ObjectStore;
  const memory = new MemoryObjectStore();
  let stores: { remote: AdapterStore; memory: AdapterStore };
  /** Applies one write to both stores. */
  const both = (write: (store: AdapterStore) => Promise<unknown>) =>
    Promise.all([write(stores.remote), write(stores.memory)]);

  before(async () => {
    s3 = await startS3();
    remote = new S3ObjectStore(
      s3Settings(s3.url, PREFIX, {
        multipartThresholdBytes: 6 * 1024 * 1024,
        partSizeBytes: 5 * 1024 * 1024,
      }),
    );
    stores = { remote: new AdapterStore(remote), memory: new AdapterStore(memory) };
    for (const run of RUNS) {
      for (let v = 1; v <= VERSIONS; v++) {
        await both((s) =>
          s.publishAdapter(run, {
            configBytes: new TextEncoder().encode(JSON.stringify({ peft_type: "LORA", r: 8, run })),
            weights: bytesOf(`${run}/${v}`, 2048),
            draft: {
              createdAt: CREATED,
              base: { fingerprint: null },
              probe: null,
              training: { step: 2 * v, algorithm: "grpo", metrics: { reward: v / VERSIONS } },
              publisher: { service: "trainer", instance: "t" },
            },
          }),
        );
        if (v % 5 === 0) {
          const key = checkpointKey(run, 2 * v);
          const pointer = new TextEncoder().encode(JSON.stringify({ key }));
          await both((s) => s.objects.put(key, bytesOf(`${run}/ckpt/${v}`, 4096)));
          await both((s) => s.objects.put(latestCheckpointKey(run), pointer));
        }
      }
    }
    for (const [run, atVersion, to] of [
      ["digits", 20, 18],
      ["digits-1", 24, 3],
    ] as const) {
      await both((s) =>
        s.writeRollback({ schema: "loracast.rollback/v1", run, to, atVersion, createdAt: CREATED }),
      );
    }
    // A checkpoint large enough to go up as a multipart upload, as a real base's would.
    const big = randomBytes(7 * 1024 * 1024);
    await both((s) => s.objects.put(checkpointKey("digits", 999), big));
    for (let i = 0; i < EXTRA_BLOBS; i += 50) {
      await both((s) =>
        Promise.all(
          Array.from({ length: Math.min(50, EXTRA_BLOBS - i) }, (_, j) =>
            s.putBlob(bytesOf(`extra/${i + j}`, 16)),
          ),
        ),
      );
    }
  });
  after(async () => {
    remote.client.destroy();
    await s3.stop();
  });

  /** Every prefix the services list, every directory-like prefix in the store, and a few mid-segment ones. */
  const prefixes = (): string[] => {
    const out = new Set(["", "runs/", "runs/d", "runs/digits", "blobs/sha256/a", "nothing/"]);
    for (const key of memory.objects.keys()) {
      for (let i = key.indexOf("/"); i !== -1; i = key.indexOf("/", i + 1)) out.add(key.slice(0, i + 1));
    }
    return [...out].sort();
  };

  it("holds more than 1000 keys under one prefix, so listings page", () => {
    assert.ok([...memory.objects.keys()].filter((k) => k.startsWith("blobs/")).length > 1000);
  });

  it("discovers every run (a delimiter listing of runs/)", async () => {
    assert.deepEqual(await stores.remote.listRuns(), [...RUNS].sort());
  });

  it("lists keys and next segments under every prefix as the in-memory store does", async () => {
    for (const prefix of prefixes()) {
      assert.deepEqual(await remote.list(prefix), await memory.list(prefix), `list ${prefix}`);
      assert.deepEqual(
        await remote.listSegments(prefix),
        await memory.listSegments(prefix),
        `segments ${prefix}`,
      );
    }
  });

  it("lists after a key (StartAfter), inside and across runs and pages", async () => {
    const all = await memory.list("");
    for (let i = 0; i < all.length; i += 97) {
      const start = all[i] as string;
      assert.deepEqual(await remote.list("", start), await memory.list("", start), `after ${start}`);
      assert.deepEqual(
        await remote.list("runs/", start),
        await memory.list("runs/", start),
        `runs/ after ${start}`,
      );
    }
  });

  it("answers the generator's reconcile and pull: versions, incremental versions, rollbacks, manifests, blobs", async () => {
    for (const run of RUNS) {
      const versions = await stores.remote.listVersions(run);
      assert.deepEqual(
        versions,
        Array.from({ length: VERSIONS }, (_, i) => i + 1),
      );
      assert.deepEqual(await stores.remote.listVersions(run, 17), [18, 19, 20, 21, 22, 23, 24]);
      assert.deepEqual(await stores.remote.currentVersion(run), await stores.memory.currentVersion(run));
      const stored = await stores.remote.readManifest(`runs/${run}/versions/000000000007.json`);
      assert.ok(stored?.ok, `manifest ${run}@7`);
      const reference = await stores.memory.readManifest(stored.value.key);
      assert.equal(stored.value.sha256, reference?.ok ? reference.value.sha256 : "");
      const weights = stored.value.manifest.adapter.files.find((f) => f.name === WEIGHTS_FILE);
      assert.ok(weights);
      const blob = await stores.remote.downloadBlob(weights);
      assert.ok(blob.ok && Buffer.from(blob.value).equals(bytesOf(`${run}/7`, 2048)));
    }
    assert.equal((await stores.remote.currentVersion("digits")).current, 24);
    assert.equal((await stores.remote.currentVersion("digits-1")).current, 3);
    assert.equal((await stores.remote.listRollbacks("digits")).length, 1);
    assert.equal(await stores.remote.latestVersion("no-such-run"), null);
  });

  it("answers the trainer: next version, checkpoints (multipart too), head, delete", async () => {
    const next = await stores.remote.publishVersion("digits0v2", {
      createdAt: CREATED,
      base: { fingerprint: null },
      adapter: {
        files: [{ name: WEIGHTS_FILE, blob: "blobs/sha256/x", sha256: "0".repeat(64), bytes: 1 }],
      },
      probe: null,
      training: null,
      publisher: { service: "trainer", instance: "t" },
    });
    assert.equal(next.manifest.version, VERSIONS + 1);
    assert.equal(next.manifest.parent, VERSIONS);
    const pointer = await remote.get(latestCheckpointKey("z9"));
    const { key } = JSON.parse(new TextDecoder().decode(pointer ?? new Uint8Array())) as { key: string };
    assert.equal(key, checkpointKey("z9", 2 * 20));
    assert.deepEqual(await remote.get(key), await memory.get(key));
    const big = checkpointKey("digits", 999);
    assert.deepEqual(await remote.head(big), { bytes: 7 * 1024 * 1024 });
    assert.ok(Buffer.from((await remote.get(big)) ?? []).equals(Buffer.from((await memory.get(big)) ?? [])));
    await remote.delete(big);
    assert.equal(await remote.head(big), null);
    assert.ok(!(await remote.list("runs/digits/checkpoints/")).includes(big));
    await remote.delete(big);
  });

  it("pages raw ListObjectsV2 and v1 as S3 does: max-keys counts keys and common prefixes, no entry twice", async () => {
    const listV2 = async (prefix: string, delimiter: string | undefined, maxKeys: number) => {
      const entries: string[] = [];
      let token: string | undefined;
      for (;;) {
        const r = await remote.client.send(
          new ListObjectsV2Command({
            Bucket: BUCKET,
            Prefix: `${PREFIX}/${prefix}`,
            MaxKeys: maxKeys,
            ...(delimiter === undefined ? {} : { Delimiter: delimiter }),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        const page = [
          ...(r.CommonPrefixes ?? []).map((p) => p.Prefix ?? ""),
          ...(r.Contents ?? []).map((o) => o.Key ?? ""),
        ];
        assert.ok(page.length <= maxKeys, `a page of ${page.length} for MaxKeys ${maxKeys}`);
        assert.equal(r.KeyCount, page.length);
        entries.push(...page);
        if (!r.IsTruncated) return entries.sort();
        assert.equal(page.length, maxKeys, "a truncated page is full");
        token = r.NextContinuationToken;
        assert.ok(token);
      }
    };
    const listV1 = async (prefix: string, delimiter: string, maxKeys: number) => {
      const entries: string[] = [];
      let marker: string | undefined;
      for (;;) {
        const r = await remote.client.send(
          new ListObjectsCommand({
            Bucket: BUCKET,
            Prefix: `${PREFIX}/${prefix}`,
            MaxKeys: maxKeys,
            Delimiter: delimiter,
            ...(marker === undefined ? {} : { Marker: marker }),
          }),
        );
        entries.push(
          ...(r.CommonPrefixes ?? []).map((p) => p.Prefix ?? ""),
          ...(r.Contents ?? []).map((o) => o.Key ?? ""),
        );
        if (!r.IsTruncated) return entries.sort();
        marker = r.NextMarker;
        assert.ok(marker);
      }
    };
    const runs = RUNS.map((r) => `${PREFIX}/runs/${r}/`).sort();
    for (const maxKeys of [1, 2, 4]) {
      assert.deepEqual(await listV2("runs/", "/", maxKeys), runs, `v2 runs/ by ${maxKeys}`);
      assert.deepEqual(await listV1("runs/", "/", maxKeys), runs, `v1 runs/ by ${maxKeys}`);
      assert.deepEqual(await listV2("runs/digits/", "/", maxKeys), [
        `${PREFIX}/runs/digits/checkpoints/`,
        `${PREFIX}/runs/digits/rollbacks/`,
        `${PREFIX}/runs/digits/versions/`,
      ]);
    }
    const blobs = (await memory.list("blobs/")).map((k) => `${PREFIX}/${k}`);
    assert.deepEqual(await listV2("blobs/", undefined, 1000), blobs);
    assert.deepEqual(await listV2("", "/", 1000), [`${PREFIX}/blobs/`, `${PREFIX}/runs/`]);
  });

  it("refuses a continuation token it did not issue with 400 InvalidArgument", async () => {
    await assert.rejects(
      remote.client.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "x", ContinuationToken: "bm90LWEtdG9rZW4" }),
      ),
      (e: unknown) =>
        e instanceof S3ServiceException && e.$metadata.httpStatusCode === 400 && e.name === "InvalidArgument",
    );
  });
});
