import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { SCALAR_NAMES, scalarNamesTable } from "./index.ts";

describe("scalar names", () => {
  it("the README's table is the one in code", () => {
    const readme = readFileSync(new URL("../../../../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("### Metrics in TensorBoard"));
    assert.ok(section.length > 0, "the README has its Metrics in TensorBoard section");
    assert.ok(
      section.includes(`\n${scalarNamesTable()}\n`),
      "README table differs: paste scalarNamesTable()",
    );
  });

  it("gives each quantity one tag, TRL's under train/ and loracast's own under loracast/", () => {
    assert.equal(new Set(SCALAR_NAMES.map((s) => s.tag)).size, SCALAR_NAMES.length);
    for (const s of SCALAR_NAMES) {
      assert.match(s.tag, s.trl === null ? /^loracast\// : /^train\//, s.source);
    }
  });
});
