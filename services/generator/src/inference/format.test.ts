import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SampledToken } from "@loracast/shared/runtime";
import { byteTokenizer } from "@loracast/shared/tokenizer";
import { ChoiceText, codePoints, type GeneratedToken } from "./choice-text.ts";
import { chatLogprobs, completionLogprobs, MIN_LOGPROB, systemFingerprint, tokenText } from "./format.ts";

const tok = byteTokenizer({ vocabSize: 260, specialIds: [0, 1, 2], stopTokenIds: [2] });
const bytes = (...b: number[]) => Uint8Array.from(b);
const sampled = (token: number, logprob: number, top: [number, number][] = []): SampledToken => ({
  token,
  logprob,
  top: top.map(([t, l]) => ({ token: t, logprob: l })),
});

describe("tokenText", () => {
  it("shows whole characters as text and bytes of a partial character as \\xHH, as OpenAI does", () => {
    assert.equal(tokenText(bytes(0x61)), "a");
    assert.equal(tokenText(bytes(0xe2, 0x9c, 0x93)), "✓");
    assert.equal(tokenText(bytes(0xf0, 0x9f, 0x98)), "\\xf0\\x9f\\x98");
    assert.equal(tokenText(bytes(0x61, 0xe2)), "a\\xe2");
    assert.equal(tokenText(bytes(0x9c)), "\\x9c");
    assert.equal(tokenText(bytes(0xc0, 0x80)), "\\xc0\\x80", "an overlong form is no character");
    assert.equal(tokenText(bytes(0xed, 0xa0, 0x80)), "\\xed\\xa0\\x80", "nor is a surrogate");
    assert.equal(tokenText(bytes()), "");
  });
});

describe("completionLogprobs", () => {
  const at = (t: SampledToken, offset: number): GeneratedToken => ({ ...t, offset });

  it("adds the sampled token to the top alternatives when it is not among them (logprobs + 1)", () => {
    const lp = completionLogprobs([at(sampled(0x62, -3, [[0x61, -0.1]]), 4)], tok);
    assert.deepEqual(lp, {
      tokens: ["b"],
      token_logprobs: [-3],
      top_logprobs: [{ a: -0.1, b: -3 }],
      text_offset: [4],
    });
  });

  it("keeps the more likely token where two share a text, and reports -inf as -9999", () => {
    const lp = completionLogprobs(
      [
        at(
          sampled(2, Number.NEGATIVE_INFINITY, [
            [1, -0.5],
            [2, -1],
          ]),
          0,
        ),
      ],
      tok,
    );
    assert.deepEqual(lp.top_logprobs, [{ "": -0.5 }], "BOS and EOS both show as the empty text");
    assert.deepEqual(lp.token_logprobs, [MIN_LOGPROB]);
    assert.equal(JSON.parse(JSON.stringify(lp)).token_logprobs[0], MIN_LOGPROB);
  });
});

describe("chatLogprobs", () => {
  it("reports a lone continuation byte's true byte, not U+FFFD's", () => {
    const lp = chatLogprobs([{ ...sampled(0x9c, -1, [[0x93, -2]]), offset: 0 }], tok);
    assert.deepEqual(lp, {
      content: [
        {
          token: "\\x9c",
          logprob: -1,
          bytes: [0x9c],
          top_logprobs: [{ token: "\\x93", logprob: -2, bytes: [0x93] }],
        },
      ],
      refusal: null,
    });
  });
});

describe("ChoiceText", () => {
  const run = (ids: number[], stops: string[]) => {
    const text = new ChoiceText(tok, stops);
    const steps = ids.map((id) => text.push(sampled(id, -1)));
    const tail = text.finish();
    return { steps, tail, text: text.text };
  };

  it("gives every byte of a multi-byte character that character's index, in code points", () => {
    const { steps, text } = run([...tok.encode("a😀✓b")], []);
    assert.equal(text, "a😀✓b");
    assert.deepEqual(
      steps.map((s) => s.token.offset),
      [0, 1, 1, 1, 1, 2, 2, 2, 3],
    );
    assert.deepEqual(
      steps.map((s) => s.emit),
      ["a", "", "", "", "😀", "", "", "✓", "b"],
    );
  });

  it("starts a token after the U+FFFD of a partial character its first byte breaks", () => {
    // An independent reference: the character index of byte p, from whole-prefix decodes alone.
    const chars = (b: number[]) => Array.from(new TextDecoder().decode(Uint8Array.from(b))).length;
    const reference = (b: number[]) =>
      b.map((_, p) =>
        chars(b.slice(0, p + 1)) === chars(b.slice(0, p)) ? chars(b.slice(0, p)) - 1 : chars(b.slice(0, p)),
      );
    for (const ids of [
      [97, 203, 58, 98, 160, 99], // lead byte broken by ':', stray continuation byte
      [0x78, 0xa0, 0xcb, 0x3a], // the generated-text case: offsets 1, 2, 3 for \xa0 \xcb :
      [0xe2, 0xe2, 0x9c, 0x93], // a lead byte broken by another lead byte
      [0xf0, 0x9f, 0x41, 0xf0, 0x9f, 0x98, 0x80], // truncated 4-byte character, then a whole one
      [0xc3, 0xa9, 0xff, 0x80, 0xed, 0xa0, 0x80], // é, invalid bytes, an encoded surrogate
    ]) {
      const { steps, text } = run(ids, []);
      assert.equal(text, new TextDecoder().decode(Uint8Array.from(ids)));
      assert.deepEqual(
        steps.map((s) => s.token.offset),
        reference(ids),
        `offsets of ${ids}`,
      );
    }
    assert.deepEqual(
      run([97, 203, 58, 98, 160, 99], []).steps.map((s) => s.token.offset),
      [0, 1, 2, 3, 4, 5],
    );
  });

  it("holds back a stop string's prefix, drops the stop string and keeps its tokens", () => {
    const { steps, tail, text } = run([...tok.encode("xy-end!")], ["-en", "zz"]);
    assert.equal(text, "xy");
    assert.equal(tail, "");
    assert.deepEqual(steps.map((s) => s.emit).join(""), "xy");
    assert.deepEqual(
      steps.map((s) => s.stopped),
      [false, false, false, false, true, true, true],
    );
    assert.deepEqual(
      steps.map((s) => s.token.offset),
      [0, 1, 2, 3, 4, 5, 6],
    );
  });

  it("emits a held-back prefix at the end when no stop string completes it", () => {
    const { steps, tail, text } = run([...tok.encode("ab-e")], ["-en"]);
    assert.equal(steps.map((s) => s.emit).join("") + tail, "ab-e");
    assert.equal(text, "ab-e");
  });

  it("counts code points, a surrogate pair once", () => {
    assert.equal(codePoints("a😀é"), 3);
  });
});

describe("systemFingerprint", () => {
  it("names the base artifacts and the adapter version", () => {
    const base = `sha256:${"a".repeat(64)}`;
    const fp = systemFingerprint(base, null);
    assert.match(fp, /^fp_[0-9a-f]{16}$/);
    assert.equal(systemFingerprint(base, null), fp);
    assert.notEqual(systemFingerprint(base, "b".repeat(64)), fp);
    assert.notEqual(systemFingerprint(`sha256:${"c".repeat(64)}`, null), fp);
  });
});
