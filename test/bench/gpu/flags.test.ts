/**
 * The GPU probes' flag checks: a good value parses, a bad one is refused with one line naming the
 * flag and what it takes (never clamped or defaulted), and `probeFlags` turns a refusal into exit 2.
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { parseChoiceFlag, parseIntFlag, parseIntListFlag, probeFlags } from "./flags.ts";

describe("parseIntFlag", () => {
  it("takes a decimal integer within the range, both ends included", () => {
    assert.deepEqual(parseIntFlag("steps", "1", 1, 1024), { ok: true, value: 1 });
    assert.deepEqual(parseIntFlag("steps", "64", 1, 1024), { ok: true, value: 64 });
    assert.deepEqual(parseIntFlag("steps", "1024", 1, 1024), { ok: true, value: 1024 });
    assert.deepEqual(parseIntFlag("rank", "0", 0, 16), { ok: true, value: 0 });
  });

  for (const raw of [
    "-3",
    "0",
    "1025",
    "abc",
    "",
    " 8",
    "2.5",
    "1e2",
    "0x10",
    "Infinity",
    "99999999999999999999",
  ])
    it(`refuses ${JSON.stringify(raw)} for 1 to 1024, naming the flag and the range`, () => {
      assert.deepEqual(parseIntFlag("steps", raw, 1, 1024), {
        ok: false,
        error: { message: `--steps takes an integer from 1 to 1024, not ${raw}` },
      });
    });
});

describe("parseIntListFlag", () => {
  it("takes 1 to `most` integers in order, a repeat dropped", () => {
    assert.deepEqual(parseIntListFlag("ms", "1,8", 1, 4096, 8), { ok: true, value: [1, 8] });
    assert.deepEqual(parseIntListFlag("ms", "4096", 1, 4096, 8), { ok: true, value: [4096] });
    assert.deepEqual(parseIntListFlag("ms", "8,1,8", 1, 4096, 8), { ok: true, value: [8, 1] });
  });

  for (const [raw, item] of [
    ["1,0", "0"],
    ["1,abc", "abc"],
    ["1,,8", ""],
    ["", ""],
    ["1,4097", "4097"],
  ] as const)
    it(`refuses ${JSON.stringify(raw)}, naming the bad item ${JSON.stringify(item)} and the range`, () => {
      assert.deepEqual(parseIntListFlag("ms", raw, 1, 4096, 8), {
        ok: false,
        error: { message: `--ms takes integers from 1 to 4096, not ${item}` },
      });
    });

  it("refuses more than `most` values", () => {
    assert.deepEqual(parseIntListFlag("ms", "1,2,3,4,5,6,7,8,9", 1, 4096, 8), {
      ok: false,
      error: { message: "--ms takes at most 8 values, not 9" },
    });
  });
});

describe("parseChoiceFlag", () => {
  it("takes one of the choices", () => {
    assert.deepEqual(parseChoiceFlag("ep", "cpu", ["cuda", "cpu"]), { ok: true, value: "cpu" });
    assert.deepEqual(parseChoiceFlag("rank", "0", ["16", "0"]), { ok: true, value: "0" });
  });

  it("refuses anything else, naming the choices", () => {
    assert.deepEqual(parseChoiceFlag("ep", "webgpu", ["cuda", "cpu"]), {
      ok: false,
      error: { message: "--ep is cuda or cpu, not webgpu" },
    });
    assert.deepEqual(parseChoiceFlag("rank", "8", ["32", "16", "0"]), {
      ok: false,
      error: { message: "--rank is 32, 16 or 0, not 8" },
    });
  });
});

describe("probeFlags", () => {
  const cli = {
    usage: "node probe.mjs [flags]",
    about: "A probe.",
    flags: {
      steps: { type: "string", default: "64", help: "timed steps, 1 to 1024" },
      ms: { type: "string", default: "1,8", help: "rows, at most 8, each 1 to 4096" },
      ep: { type: "string", default: "cuda", help: "cuda or cpu" },
    },
  } as const;

  /** Runs `body` with process.exit and stderr caught: the exit code and what was written. */
  function caught(t: TestContext, body: () => unknown): { code: number | undefined; stderr: string } {
    let stderr = "";
    t.mock.method(process.stderr, "write", (chunk: string) => {
      stderr += chunk;
      return true;
    });
    // usageError's exit, thrown so that the checker stops where the probe would.
    t.mock.method(process, "exit", (code?: number) => {
      throw Object.assign(new Error("exit"), { code });
    });
    try {
      body();
      return { code: undefined, stderr };
    } catch (e) {
      return { code: (e as { code?: number }).code, stderr };
    } finally {
      t.mock.restoreAll();
    }
  }

  it("returns the checked values of good flags", () => {
    const flags = probeFlags(cli, { steps: "16", ms: "1,8,64", ep: "cpu" });
    assert.equal(flags.int("steps", 1, 1024), 16);
    assert.deepEqual(flags.ints("ms", 1, 4096, 8), [1, 8, 64]);
    assert.equal(flags.oneOf("ep", ["cuda", "cpu"]), "cpu");
  });

  const good = { steps: "64", ms: "1,8", ep: "cuda" };
  for (const [bad, check, line] of [
    [{ steps: "-3" }, "int", "error: --steps takes an integer from 1 to 1024, not -3"],
    [{ steps: "abc" }, "int", "error: --steps takes an integer from 1 to 1024, not abc"],
    [{ ms: "1,0" }, "ints", "error: --ms takes integers from 1 to 4096, not 0"],
    [{ ep: "webgpu" }, "oneOf", "error: --ep is cuda or cpu, not webgpu"],
  ] as const)
    it(`${JSON.stringify(bad)}: exit 2, first line ${JSON.stringify(line)}, then the usage`, (t) => {
      const flags = probeFlags(cli, { ...good, ...bad });
      const r = caught(t, () =>
        check === "int"
          ? flags.int("steps", 1, 1024)
          : check === "ints"
            ? flags.ints("ms", 1, 4096, 8)
            : flags.oneOf("ep", ["cuda", "cpu"]),
      );
      assert.equal(r.code, 2);
      const [first, second] = r.stderr.split("\n");
      assert.equal(first, line);
      assert.equal(second, "usage: node probe.mjs [flags]");
    });
});
