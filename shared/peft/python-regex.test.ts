import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compilePythonRegex, translatePythonRegex } from "./python-regex.ts";

const Q = "model.layers.1.self_attn.q_proj";
const K = "model.layers.1.self_attn.k_proj";

function fullMatch(pattern: string, name: string): boolean {
  const re = compilePythonRegex(pattern);
  if (!re.ok) throw new Error(re.error.message);
  return re.value.matches(name);
}

describe("Python regexes under RE2", () => {
  it("match like re.fullmatch, Python's named groups included", () => {
    assert.ok(fullMatch("(?P<proj>.*\\.(q_proj|v_proj))", Q));
    assert.ok(!fullMatch("(?P<proj>.*\\.(q_proj|v_proj))", K));
    // Full match: a suffix alone does not select the module.
    assert.ok(!fullMatch("q_proj", Q));
    assert.ok(fullMatch(".*\\.1\\.self_attn\\.q_proj", Q));
    assert.ok(!fullMatch(".*\\.0\\.self_attn\\.q_proj", Q));
  });

  it("translate Python spellings RE2 writes differently, keeping their meaning", () => {
    assert.deepEqual(translatePythonRegex("a{,3}b{,}"), { ok: true, value: "a{0,3}b{0,}" });
    assert.deepEqual(translatePythonRegex("q_proj\\Z"), { ok: true, value: "q_proj\\z" });
    assert.deepEqual(translatePythonRegex("\\u0071_proj"), { ok: true, value: "\\x{0071}_proj" });
    // Escaped braces, braces in a set and "]" as a set's first member stay as they are.
    assert.deepEqual(translatePythonRegex("\\{,3}[{,]x[]{,2}]"), { ok: true, value: "\\{,3}[{,]x[]{,2}]" });
    assert.ok(fullMatch("model\\.layers\\.\\d{,2}\\.self_attn\\.q_proj\\Z", Q));
    assert.ok(fullMatch(".*\\u002eq_proj", Q));
  });

  it("refuses what RE2 cannot do or Python reads differently, with the reason", () => {
    for (const [pattern, why] of [
      ["(?P<x>q)(?P=x)", /unsupported Perl syntax/],
      ["(q)\\1", /invalid escape/],
      [".*(?=q_proj)q_proj", /unsupported Perl syntax/],
      ["(?x) q _proj", /unsupported Perl syntax/],
      ["[[:alpha:]]+", /POSIX class/],
      ["(q_proj", /missing closing \)/],
      ["q\\", /lone backslash/],
    ] as const) {
      const r = compilePythonRegex(pattern);
      assert.equal(r.ok, false, pattern);
      if (!r.ok) {
        assert.match(r.error.message, /^not a supported regular expression: /, pattern);
        assert.match(r.error.message, why, pattern);
      }
    }
  });

  it("checks the pattern alone before wrapping it, so it cannot unbalance the wrapper", () => {
    const r = compilePythonRegex("q_proj)|(.*", (s) => `(.*\\.)?(${s})`);
    assert.equal(r.ok, false);
  });
});
