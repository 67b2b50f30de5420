/**
 * A small JSON parser for safetensors headers. JSON.parse silently keeps the last of two duplicate
 * keys, which would let a file present one tensor to us and another to a different reader, so this
 * parser refuses duplicates at every depth. It also caps nesting, since the header is untrusted input.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Invalid JSON, a duplicate key (`duplicateKey` names it) or nesting past 64 levels, with the byte
 * offset in the message.
 */
export class StrictJsonError extends Error {
  override readonly name = "StrictJsonError";
  constructor(
    message: string,
    readonly duplicateKey?: string,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Parses JSON (RFC 8259) refusing duplicate keys at any depth; throws `StrictJsonError`. */
export function parseStrictJson(text: string): JsonValue {
  let pos = 0;

  const fail = (what: string): never => {
    throw new StrictJsonError(`${what} at offset ${pos}`);
  };
  const skipWs = (): void => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      pos++;
    }
  };
  const expect = (ch: string): void => {
    if (text[pos] !== ch) fail(`expected '${ch}'`);
    pos++;
  };

  const parseString = (): string => {
    expect('"');
    const start = pos;
    let simple = true;
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        simple = false;
        pos += 2;
        continue;
      }
      pos++;
    }
    if (pos >= text.length) fail("unterminated string");
    const raw = text.slice(start, pos);
    pos++;
    if (simple) return raw;
    try {
      return JSON.parse(`"${raw}"`) as string;
    } catch {
      return fail("invalid escape in string");
    }
  };

  const parseValue = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail("nesting too deep");
    skipWs();
    const c = text[pos];
    if (c === "{") {
      pos++;
      const out: { [key: string]: JsonValue } = {};
      const seen = new Set<string>();
      skipWs();
      if (text[pos] === "}") {
        pos++;
        return out;
      }
      for (;;) {
        skipWs();
        const key = parseString();
        if (seen.has(key)) throw new StrictJsonError(`duplicate key "${key}"`, key);
        seen.add(key);
        skipWs();
        expect(":");
        Object.defineProperty(out, key, {
          value: parseValue(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        skipWs();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        expect("}");
        return out;
      }
    }
    if (c === "[") {
      pos++;
      const out: JsonValue[] = [];
      skipWs();
      if (text[pos] === "]") {
        pos++;
        return out;
      }
      for (;;) {
        out.push(parseValue(depth + 1));
        skipWs();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        expect("]");
        return out;
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith("true", pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith("false", pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith("null", pos)) {
      pos += 4;
      return null;
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null) return fail("unexpected character");
    pos += m[0].length;
    return Number(m[0]);
  };

  const value = parseValue(0);
  skipWs();
  if (pos !== text.length) fail("trailing characters");
  return value;
}
