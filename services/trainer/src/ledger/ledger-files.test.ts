import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { TrainerError } from "../errors.ts";
import { LedgerFiles } from "./ledger-files.ts";

describe("LedgerFiles", () => {
  it("round-trips a run's ledger, and has none for an unknown run", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ledger-"));
    try {
      const files = new LedgerFiles(dir);
      assert.equal(await files.get("r"), null);
      const entry = {
        head: { version: 3, rollbacks: 1 },
        rollbacks: [{ key: "runs/r/rollbacks/a.json", bytes: new Uint8Array([1, 2]), signature: null }],
      };
      await files.put("r", entry);
      assert.deepEqual(await new LedgerFiles(dir).get("r"), entry);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a damaged ledger with an error naming the file and what to do", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ledger-"));
    try {
      await writeFile(join(dir, "r.json"), "{not json");
      await assert.rejects(
        new LedgerFiles(dir).get("r"),
        (e: unknown) =>
          e instanceof TrainerError &&
          e.code === "internal" &&
          e.message.includes(join(dir, "r.json")) &&
          /move it aside/.test(e.message),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
