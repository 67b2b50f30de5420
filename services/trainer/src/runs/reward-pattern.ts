/**
 * Regex reward patterns, compiled with RE2 (re2js): matching runs in time linear in the completion,
 * so no pattern can pin a core, stall `/healthz` or cancel, or wedge the trainer again when the run
 * resumes after a restart. What RE2 cannot do in linear time (backreferences, lookaround) is
 * refused when the run is created, with RE2's reason.
 */
import { err, type Failure, ok, type Result } from "@loracast/shared/result";
import { RE2JS } from "re2js";

/** Longest accepted pattern, in UTF-16 code units: a reward pattern is a short rule, not data. */
const MAX_REWARD_PATTERN_LENGTH = 1024;

/** Compiles a reward pattern (RE2 syntax); the error's message is for the user, without the field name. */
export function compileRewardPattern(pattern: string): Result<RE2JS, Failure> {
  if (pattern.length > MAX_REWARD_PATTERN_LENGTH) {
    return err({ message: `at most ${MAX_REWARD_PATTERN_LENGTH} characters (got ${pattern.length})` });
  }
  try {
    return ok(RE2JS.compile(pattern));
  } catch (e) {
    return err({ message: `not a supported RE2 regular expression: ${(e as Error).message}` });
  }
}
