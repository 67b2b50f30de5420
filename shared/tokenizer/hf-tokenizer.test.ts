import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { IncrementalDecoder, loadTokenizer } from "./index.ts";

/** GPT-2's byte-level alphabet: the character each byte is written as in a byte-level BPE vocab. */
function byteLevelAlphabet(): string[] {
  const printable = [
    ...Array.from({ length: 94 }, (_, i) => 33 + i),
    ...Array.from({ length: 12 }, (_, i) => 161 + i),
    ...Array.from({ length: 82 }, (_, i) => 174 + i),
  ];
  const out: string[] = new Array(256);
  for (const b of printable) out[b] = String.fromCodePoint(b);
  let shifted = 0;
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCodePoint(256 + shifted++);
  return out;
}

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * A Qwen2-style tokenizer.json, small enough to write out: byte-level BPE over the 256 byte
 * symbols, five merges that build "hello" and "Ġw", and ChatML's special tokens.
 */
function writeQwenStyleTokenizer(dir: string, options: { templateFile?: string } = {}): void {
  const alphabet = byteLevelAlphabet();
  const vocab: Record<string, number> = Object.fromEntries(alphabet.map((c, id) => [c, id]));
  const merges = ["h e", "l l", "he ll", "hell o", "Ġ w"];
  for (const m of merges) vocab[m.replace(" ", "")] = Object.keys(vocab).length;
  const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
  const added = specials.map((content, i) => ({
    id: 261 + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true };
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ chat_template: CHATML, eos_token: "<|im_end|>", bos_token: null }),
  );
  if (options.templateFile !== undefined)
    writeFileSync(join(dir, "chat_template.jinja"), options.templateFile);
}

const MODEL = { vocabSize: 264, bosTokenId: null, eosTokenIds: [261] };
const id = (c: string) => c.codePointAt(0) as number;

describe("HF tokenizer.json", () => {
  const dir = mkdtempSync(join(tmpdir(), "loracast-tokenizer-"));
  writeQwenStyleTokenizer(dir);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("applies the BPE merges in rank order and decodes back to the text", async () => {
    const tok = await loadTokenizer(dir, MODEL);
    assert.equal(tok.kind, "huggingface");
    // "hello" merges fully; " world" becomes "Ġw" + single bytes.
    assert.deepEqual(tok.encode("hello world"), [259, 260, id("o"), id("r"), id("l"), id("d")]);
    assert.equal(tok.decode(tok.encode("hello world")), "hello world");
    assert.equal(tok.decode(tok.encode("héllo ✓")), "héllo ✓");
  });

  it("keeps special tokens whole when encoding and drops them when decoding", async () => {
    const tok = await loadTokenizer(dir, MODEL);
    const ids = tok.encode("<|im_start|>hello<|im_end|>");
    assert.deepEqual(ids, [262, 259, 263]);
    assert.equal(tok.decode(ids), "hello");
  });

  it("stops on the model's EOS ids and on the tokenizer config's eos_token", async () => {
    const tok = await loadTokenizer(dir, MODEL);
    assert.deepEqual([...tok.stopTokenIds].sort(), [261, 263]);
  });

  it("renders the tokenizer config's chat template, which a chat_template.jinja file overrides", async () => {
    const tok = await loadTokenizer(dir, MODEL);
    const messages = [
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ];
    const prompt = tok.applyChatTemplate(messages, true);
    assert.equal(
      prompt,
      "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
    assert.equal(tok.encode(prompt).filter((t) => t === 262).length, 3, "each <|im_start|> is one token");
    assert.ok(!tok.applyChatTemplate(messages, false).endsWith("assistant\n"));

    const other = join(dir, "with-template-file");
    mkdirSync(other);
    writeQwenStyleTokenizer(other, {
      templateFile: "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
    });
    assert.equal(
      (await loadTokenizer(other, MODEL)).applyChatTemplate(messages, true),
      "[system] be brief\n[user] hi\n",
    );
  });

  it("streams byte-level tokens without splitting a multi-byte character", async () => {
    const tok = await loadTokenizer(dir, MODEL);
    const ids = tok.encode("a✓b");
    assert.equal(ids.length, 5, "✓ is three byte tokens");
    const dec = new IncrementalDecoder(tok);
    assert.deepEqual(
      ids.map((t) => dec.push(t)),
      ["a", "", "", "✓", "b"],
    );
  });

  it("gives each token's true bytes: a byte-level piece of a character, a merged piece, none for a special", async () => {
    const tok = await loadTokenizer(dir, MODEL);
    const [lead, mid, last] = tok.encode("✓");
    assert.deepEqual([...tok.tokenBytes(lead as number)], [0xe2]);
    assert.deepEqual([...tok.tokenBytes(mid as number)], [0x9c]);
    assert.deepEqual([...tok.tokenBytes(last as number)], [0x93]);
    const [hello] = tok.encode("hello");
    assert.equal(Buffer.from(tok.tokenBytes(hello as number)).toString(), "hello");
    assert.deepEqual([...tok.tokenBytes(tok.encode(" w")[0] as number)], [0x20, 0x77]);
    assert.deepEqual([...tok.tokenBytes(261)], []);
  });
});
