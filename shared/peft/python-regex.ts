/**
 * Python regular expressions, as PEFT writes them in `adapter_config.json`, evaluated with RE2
 * (re2js): matching runs in linear time, so a hostile pattern in an uploaded config cannot stall a
 * publisher or a generator, and Python's named groups `(?P<name>…)` are RE2 syntax too. Python
 * spellings that RE2 writes differently, with the same meaning, are translated first; what RE2 cannot
 * do (backreferences, lookaround, verbose mode, …) is refused with RE2's reason.
 *
 * Module names are ASCII, so `\d`, `\w`, `\s` and `\b` (Unicode in Python, ASCII in RE2) and `$`
 * (Python also matches before a final newline) select the same modules under both engines.
 */
import { RE2JS } from "re2js";
import { err, type Failure, ok, type Result } from "../result/index.ts";

const HEX4 = /^[0-9a-fA-F]{4}$/;
const HEX8 = /^[0-9a-fA-F]{8}$/;
const PY_REPEAT = /^\{,(\d*)\}/;

/**
 * The RE2 spelling of a Python pattern: `\Z` → `\z`, `\uXXXX` and `\UXXXXXXXX` → `\x{…}`, and the
 * Python-only quantifier `{,n}` → `{0,n}` (RE2 would read it as literal text). POSIX classes
 * (`[[:alpha:]]`) are refused: Python reads them as a plain set of characters.
 */
export function translatePythonRegex(pattern: string): Result<string, Failure> {
  let out = "";
  let inClass = false;
  // Where the current set's members start in `out`: a "]" there is a member, not the end.
  let members = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) return err({ message: "ends with a lone backslash" });
      if (next === "Z" && !inClass) {
        out += "\\z";
        i++;
        continue;
      }
      const width = next === "u" ? 4 : next === "U" ? 8 : 0;
      const hex = pattern.slice(i + 2, i + 2 + width);
      if (width > 0 && (width === 4 ? HEX4 : HEX8).test(hex)) {
        out += `\\x{${hex}}`;
        i += 1 + width;
        continue;
      }
      out += c + next;
      i++;
      continue;
    }
    if (inClass) {
      if (c === "[" && pattern[i + 1] === ":") {
        return err({ message: `POSIX class at offset ${i} ("[:"): Python reads it as a set of characters` });
      }
      if (c === "]" && out.length > members) inClass = false;
      out += c;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += pattern[i + 1] === "^" ? "[^" : "[";
      if (pattern[i + 1] === "^") i++;
      members = out.length;
      continue;
    }
    const repeat = c === "{" ? PY_REPEAT.exec(pattern.slice(i)) : null;
    if (repeat !== null) {
      out += `{0,${repeat[1]}}`;
      i += repeat[0].length - 1;
      continue;
    }
    out += c;
  }
  return ok(out);
}

/**
 * Compiles a Python pattern for RE2; the result's `matches` is Python's `re.fullmatch`. `wrap`
 * embeds the translated pattern in a larger expression, as PEFT does (`(.*\.)?({key})$` and the
 * like); the pattern is checked alone first, so it cannot unbalance the wrapper, and the reason
 * always speaks of the user's pattern.
 */
export function compilePythonRegex(
  pattern: string,
  wrap: (source: string) => string = (s) => s,
): Result<RE2JS, Failure> {
  const source = translatePythonRegex(pattern);
  if (!source.ok) return err({ message: `not a supported regular expression: ${source.error.message}` });
  try {
    RE2JS.compile(source.value);
    return ok(RE2JS.compile(wrap(source.value)));
  } catch (e) {
    return err({ message: `not a supported regular expression: ${(e as Error).message}` });
  }
}
