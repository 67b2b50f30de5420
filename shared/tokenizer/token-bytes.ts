/**
 * The raw bytes behind one vocabulary entry of a HF `tokenizer.json`, for logprobs that report a
 * token's true UTF-8 bytes even when it holds only part of a character (OpenAI's `bytes`).
 */
type Json = Record<string, unknown>;

const utf8 = new TextEncoder();

/** GPT-2's bytes_to_unicode, inverted: the printable character a byte-level BPE piece uses → that byte. */
function byteLevelAlphabet(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = [...bytes];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + n++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCodePoint(chars[i] as number), b]));
}

/** Decoder types of `tokenizer.json`, nested `Sequence`s flattened. */
function decoderTypes(decoder: unknown): string[] {
  if (typeof decoder !== "object" || decoder === null) return [];
  const d = decoder as Json;
  if (d.type === "Sequence" && Array.isArray(d.decoders)) return d.decoders.flatMap(decoderTypes);
  return typeof d.type === "string" ? [d.type] : [];
}

/**
 * `(id) => bytes` for a HF tokenizer: byte-level BPE pieces map back through GPT-2's alphabet,
 * byte-fallback pieces (`<0xE2>`) are their byte, Metaspace pieces turn `▁` into a space, added
 * tokens are their content and special tokens have no bytes (decoding skips them). Anything else
 * falls back to `decode([id])`.
 */
export function hfTokenBytes(
  tokenizerJson: Json,
  idToToken: (id: number) => string | undefined,
  decodeOne: (id: number) => string,
): (id: number) => Uint8Array {
  const types = decoderTypes(tokenizerJson.decoder);
  const byteLevel = types.includes("ByteLevel") ? byteLevelAlphabet() : null;
  const byteFallback = types.includes("ByteFallback");
  const metaspace = types.includes("Metaspace") || types.includes("Replace");
  const added = new Map<number, { content: string; special: boolean }>();
  for (const t of Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : []) {
    const a = t as Json;
    if (typeof a.id === "number" && typeof a.content === "string")
      added.set(a.id, { content: a.content, special: a.special === true });
  }
  return (id) => {
    const a = added.get(id);
    if (a !== undefined) return a.special ? new Uint8Array(0) : utf8.encode(a.content);
    const piece = idToToken(id);
    if (piece === undefined) return new Uint8Array(0);
    if (byteLevel !== null) {
      const out: number[] = [];
      for (const ch of piece) {
        const b = byteLevel.get(ch);
        if (b === undefined) return utf8.encode(decodeOne(id));
        out.push(b);
      }
      return Uint8Array.from(out);
    }
    const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (byteFallback && hex !== null) return Uint8Array.of(Number.parseInt(hex[1] as string, 16));
    if (metaspace) return utf8.encode(piece.replaceAll("\u2581", " "));
    return utf8.encode(decodeOne(id));
  };
}
