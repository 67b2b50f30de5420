import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { byteTokenizer, IncrementalDecoder } from "./index.ts";

describe("byte tokenizer", () => {
  const tok = byteTokenizer({ vocabSize: 256, specialIds: [0, 1, 2], stopTokenIds: [2] });

  it("round-trips UTF-8 text and drops special ids", () => {
    const ids = tok.encode("héllo ✓");
    assert.equal(ids.length, new TextEncoder().encode("héllo ✓").length);
    assert.equal(tok.decode([1, ...ids, 2]), "héllo ✓");
  });

  it("renders the chat template through jinja", () => {
    const prompt = tok.applyChatTemplate(
      [
        { role: "system", content: "be brief" },
        { role: "user", content: "hi" },
      ],
      true,
    );
    assert.equal(prompt, "<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n");
  });

  it("hands the template the whole message: name and tool_call_id too, as vLLM does", () => {
    const prompt = tok.applyChatTemplate(
      [
        { role: "user", content: "hi", name: "ann" },
        { role: "tool", content: "42", tool_call_id: "c1" },
      ],
      false,
    );
    assert.equal(prompt, "<|user name=ann|>\nhi\n<|tool id=c1|>\n42\n");
  });

  it("streams text without splitting a multi-byte character", () => {
    const dec = new IncrementalDecoder(tok);
    const deltas = tok.encode("a✓b").map((id) => dec.push(id));
    assert.deepEqual(deltas, ["a", "", "", "✓", "b"]);
    assert.equal(dec.flush(), "");
  });

  it("gives a token's true byte, a lone continuation byte included, and none for a special id", () => {
    assert.deepEqual([...tok.tokenBytes(0x9c)], [0x9c]);
    assert.deepEqual([...tok.tokenBytes(0x61)], [0x61]);
    assert.deepEqual([...tok.tokenBytes(2)], []);
  });

  it("holds back only a character more bytes could finish; a byte that can never be one comes out as U+FFFD at once", () => {
    const dec = new IncrementalDecoder(tok);
    // 0x80 is a stray continuation byte, 0xE2 0x9C starts "✓", 0x61 ("a") shows it broken.
    assert.deepEqual(
      [0x80, 0xe2, 0x9c, 0x61].map((id) => dec.push(id)),
      ["\uFFFD", "", "", "\uFFFDa"],
    );
  });
});
