import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compareKeys, listPage, type PageRequest } from "./page.ts";

const KEYS = [
  "blobs/sha256/aa",
  "blobs/sha256/bb",
  "runs/digits-1/checkpoints/000000000005.safetensors",
  "runs/digits-1/versions/000000000001.json",
  "runs/digits-1/versions/000000000002.json",
  "runs/digits/versions/000000000001.json",
  "runs/x/rollbacks/000000000002-000000000001.json",
  "top",
].sort(compareKeys);

const request = (r: Partial<PageRequest>): PageRequest => ({
  prefix: "",
  delimiter: "",
  startAfter: "",
  maxKeys: 1000,
  ...r,
});

/** Every entry of a listing, following `next` from page to page. */
function pages(r: Partial<PageRequest>): { keys: string[]; prefixes: string[]; count: number } {
  const out = { keys: [] as string[], prefixes: [] as string[], count: 0 };
  let startAfter = r.startAfter ?? "";
  for (;;) {
    const page = listPage(KEYS, request({ ...r, startAfter }));
    out.keys.push(...page.keys);
    out.prefixes.push(...page.commonPrefixes);
    out.count++;
    if (!page.isTruncated) return out;
    assert.ok(page.next !== undefined, "a truncated page names where the next starts");
    startAfter = page.next;
  }
}

describe("S3 listing pages", () => {
  it("sorts by UTF-8 bytes, as S3 does", () => {
    // '-' (0x2d) sorts before '/' (0x2f), so digits-1's keys come before digits'.
    assert.ok(
      KEYS.indexOf("runs/digits-1/versions/000000000001.json") <
        KEYS.indexOf("runs/digits/versions/000000000001.json"),
    );
    // U+FF5E is one UTF-16 unit but sorts after U+1F600 (a surrogate pair) in UTF-8.
    assert.ok(compareKeys("\u{1F600}", "\uFF5E") > 0);
    assert.ok(compareKeys("a", "a") === 0 && compareKeys("a", "ab") < 0);
  });

  it("rolls up keys at any depth below a common prefix", () => {
    const page = listPage(KEYS, request({ prefix: "runs/", delimiter: "/" }));
    assert.deepEqual(page.commonPrefixes, ["runs/digits-1/", "runs/digits/", "runs/x/"]);
    assert.deepEqual(page.keys, []);
    assert.equal(page.isTruncated, false);
    const root = listPage(KEYS, request({ delimiter: "/" }));
    assert.deepEqual(root.commonPrefixes, ["blobs/", "runs/"]);
    assert.deepEqual(root.keys, ["top"]);
  });

  it("counts keys and common prefixes together toward max-keys and resumes after the last entry", () => {
    for (const maxKeys of [1, 2, 3]) {
      const all = pages({ prefix: "runs/", delimiter: "/", maxKeys });
      assert.deepEqual(all.prefixes, ["runs/digits-1/", "runs/digits/", "runs/x/"], `maxKeys ${maxKeys}`);
      assert.equal(all.count, Math.ceil(3 / maxKeys));
      const mixed = pages({ delimiter: "/", maxKeys });
      assert.deepEqual([...mixed.prefixes, ...mixed.keys], ["blobs/", "runs/", "top"]);
      const flat = pages({ maxKeys });
      assert.deepEqual(flat.keys, KEYS);
    }
  });

  it("starts after a key, inside or outside a common prefix", () => {
    const after = listPage(
      KEYS,
      request({ prefix: "runs/digits-1/versions/", startAfter: "runs/digits-1/versions/000000000001.json" }),
    );
    assert.deepEqual(after.keys, ["runs/digits-1/versions/000000000002.json"]);
    const inside = listPage(
      KEYS,
      request({ prefix: "runs/", delimiter: "/", startAfter: "runs/digits-1/versions/000000000001.json" }),
    );
    assert.deepEqual(inside.commonPrefixes, ["runs/digits-1/", "runs/digits/", "runs/x/"]);
    const past = listPage(
      KEYS,
      request({ prefix: "runs/", delimiter: "/", startAfter: "runs/digits-1/versions/000000000002.json" }),
    );
    assert.deepEqual(past.commonPrefixes, ["runs/digits/", "runs/x/"]);
    const marker = listPage(KEYS, request({ prefix: "runs/", delimiter: "/", startAfter: "runs/digits-1/" }));
    assert.deepEqual(
      marker.commonPrefixes,
      ["runs/digits/", "runs/x/"],
      "a common prefix as marker skips it whole",
    );
  });

  it("is not truncated when the last entry exactly fills the page", () => {
    const page = listPage(KEYS, request({ prefix: "blobs/", maxKeys: 2 }));
    assert.deepEqual(page.keys, ["blobs/sha256/aa", "blobs/sha256/bb"]);
    assert.equal(page.isTruncated, false);
    assert.equal(page.next, undefined);
  });
});
