import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatVersionRef, parseVersionRef } from "./version-ref.ts";

describe("parseVersionRef", () => {
  it("parses <run>@<version> for a run name and a version of 1 or more", () => {
    assert.deepEqual(parseVersionRef("my-run@12"), { run: "my-run", version: 12 });
  });
  it("gives null, so no store key is built, for a name that is not a run name or a version", () => {
    for (const name of [
      "runs/../../x@1",
      "BAD_NAME@1",
      "a\u0000b@1",
      "a..b@1",
      "x@0",
      "x@99999999999999999999",
      "x",
    ]) {
      assert.equal(parseVersionRef(name), null, JSON.stringify(name));
    }
  });
});

describe("formatVersionRef", () => {
  it("writes what parseVersionRef reads back", () => {
    assert.equal(formatVersionRef("my-run", 12), "my-run@12");
    assert.deepEqual(parseVersionRef(formatVersionRef("a-1", 3)), { run: "a-1", version: 3 });
  });
});
