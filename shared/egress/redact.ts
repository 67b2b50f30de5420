/**
 * Credential redaction for everything a service shows: API responses and log lines. URLs in run
 * configs and subscriptions may carry credentials (`user:pass@host`, `?api_key=…`); the services
 * keep them to use them, but never echo them.
 */

/** What stands in for a redacted credential. */
const REDACTED = "***";

/** Query parameter names whose values are credentials (compared case-insensitively, `-` as `_`). */
const SECRET_PARAM =
  /^(?:api_?key|apikey|key|token|access_?token|refresh_?token|id_?token|auth|authorization|secret|client_?secret|password|passwd|pwd|sig|signature|x_amz_signature|x_amz_credential|x_amz_security_token|session_?token|code)$/;

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(name.toLowerCase().replaceAll("-", "_"));
}

/**
 * The URL with its userinfo and credential-named query values replaced by `***`
 * (`https://u:p@h/r?api_key=k&x=1` → `https://***@h/r?api_key=***&x=1`). A string that does not
 * parse as a URL is returned unchanged.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  let changed = false;
  if (u.username !== "" || u.password !== "") {
    u.username = REDACTED;
    u.password = "";
    changed = true;
  }
  for (const name of [...u.searchParams.keys()]) {
    if (isSecretParam(name)) {
      u.searchParams.set(name, REDACTED);
      changed = true;
    }
  }
  if (!changed) return url;
  // URLSearchParams percent-encodes `*`; keep the marker readable.
  return u.toString().replaceAll("%2A%2A%2A", REDACTED);
}

/** Free text (an error message, a log field) with every URL in it redacted as {@link redactUrl}. */
export function redactText(text: string): string {
  return text.replace(URL_IN_TEXT, (m) => {
    // Punctuation that ends a sentence ("… http://h/x: HTTP 500") is not part of the URL.
    const url = m.replace(/[.,;:!?)\]}]+$/, "");
    return redactUrl(url) + m.slice(url.length);
  });
}

/**
 * A deep copy of a JSON-like value with every string redacted as {@link redactText}. Used at the
 * edges: response bodies that carry run configs, subscriptions or errors.
 */
export function redactSecrets<T>(value: T): T {
  return walk(value) as T;
}

function walk(value: unknown): unknown {
  if (typeof value === "string") return redactText(value);
  if (Array.isArray(value)) return value.map(walk);
  if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
  }
  return value;
}
