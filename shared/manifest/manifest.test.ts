import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  currentVersion,
  type RollbackRecord,
  revocationMessage,
  revokedBy,
  versionManifestSchema,
} from "./index.ts";

const rb = (to: number, atVersion: number): RollbackRecord => ({
  schema: "loracast.rollback/v1",
  run: "r",
  to,
  atVersion,
  createdAt: "2026-01-01T00:00:00.000Z",
});

describe("current version", () => {
  it("is the highest version when nothing was rolled back", () => {
    assert.equal(currentVersion([1, 3, 2], []), 3);
    assert.equal(currentVersion([], []), null);
  });

  it("skips revoked versions and takes newer publishes after a rollback", () => {
    assert.equal(currentVersion([1, 2, 3, 4], [rb(2, 4)]), 2);
    assert.equal(currentVersion([1, 2, 3, 4, 5], [rb(2, 4)]), 5);
    assert.equal(currentVersion([1, 2, 3, 4, 5], [rb(2, 4), rb(1, 5)]), 1);
  });

  it("does not depend on the order rollbacks are seen in", () => {
    const a = [rb(3, 6), rb(1, 4)];
    assert.equal(currentVersion([1, 2, 3, 4, 5, 6], a), currentVersion([1, 2, 3, 4, 5, 6], [...a].reverse()));
  });
});

describe("revocations", () => {
  it("names the record that revoked a version, in (to, atVersion], and says so in one sentence", () => {
    const records = [rb(3, 6), rb(1, 4)];
    assert.equal(revokedBy(4, records)?.to, 3, "the first listed record that covers it");
    assert.equal(revokedBy(2, records)?.to, 1);
    assert.equal(revokedBy(1, records), null, "a rollback's target stays");
    assert.equal(revokedBy(7, records), null, "a later publish is not revoked");
    assert.equal(
      revocationMessage(5, rb(3, 6)),
      "r@5 was revoked by rollback to v3 at 2026-01-01T00:00:00.000Z",
    );
  });
});

describe("version manifest schema", () => {
  /** A manifest of `r@1` as JSON, with `adapter` as given. */
  const manifest = (adapter: unknown) => ({
    schema: "loracast.adapter-version/v1",
    run: "r",
    version: 1,
    parent: null,
    createdAt: "2026-01-01T00:00:00.000Z",
    base: { fingerprint: null },
    adapter,
    probe: null,
    training: null,
    publisher: { service: "trainer", instance: "t1" },
  });

  it("refuses a manifest whose sha256 is not hex", () => {
    const r = versionManifestSchema.safeParse(
      manifest({ files: [{ name: "a", blob: "b", sha256: "XYZ", bytes: 1 }] }),
    );
    assert.equal(r.success, false);
    assert.deepEqual(r.error?.issues[0]?.path, ["adapter", "files", 0, "sha256"]);
  });

  it("still accepts a manifest written with the former inline adapter.config, and drops it", () => {
    const r = versionManifestSchema.safeParse(
      manifest({
        config: { peft_type: "LORA", r: 8 },
        files: [{ name: "adapter_model.safetensors", blob: "b", sha256: "a".repeat(64), bytes: 1 }],
      }),
    );
    assert.ok(r.success, JSON.stringify(r.error?.issues));
    assert.deepEqual(Object.keys(r.data.adapter), ["files"]);
  });
});
