/** One page of an S3 listing (ListObjects v1 and v2), computed from every key under the prefix. */

/** What a listing request asks for, after the HTTP layer has parsed and validated it. */
export interface PageRequest {
  /** Only keys that start with this; "" for every key. */
  prefix: string;
  /** Rolls keys up into common prefixes at the first occurrence after `prefix`; "" for none. */
  delimiter: string;
  /**
   * Only entries after this one (v2 `start-after` or continuation token, v1 `marker`). When it is a
   * common prefix of this listing, the whole prefix is skipped, as S3 resumes after a `NextMarker`.
   */
  startAfter: string;
  /** Entries per page, keys and common prefixes together, as S3 counts them (1 to 1000). */
  maxKeys: number;
}

/** One page, in S3's order (UTF-8 byte order of keys). */
export interface Page {
  keys: string[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The page's last entry (key or common prefix), where the next page starts after; set when truncated. */
  next?: string;
}

/** Orders strings by their UTF-8 bytes, as S3 orders keys (JavaScript's `<` compares UTF-16 units). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The page of `keys` (every key under `request.prefix`, sorted by `compareKeys`) that `request`
 * names. Keys past the delimiter collapse into one common prefix, which takes one slot of `maxKeys`
 * however many keys it holds.
 */
export function listPage(keys: readonly string[], request: PageRequest): Page {
  const { prefix, delimiter, startAfter, maxKeys } = request;
  const page: Page = { keys: [], commonPrefixes: [], isTruncated: false };
  let taken = 0;
  let last: string | undefined;
  for (const key of keys) {
    if (!key.startsWith(prefix) || compareKeys(key, startAfter) <= 0) continue;
    const cut = delimiter === "" ? -1 : key.indexOf(delimiter, prefix.length);
    const entry = cut === -1 ? key : key.slice(0, cut + delimiter.length);
    // Keys are sorted, so the keys of one common prefix are adjacent.
    if (entry === last || (cut !== -1 && entry === startAfter)) continue;
    if (taken === maxKeys) {
      page.isTruncated = true;
      if (last !== undefined) page.next = last;
      break;
    }
    if (cut === -1) page.keys.push(key);
    else page.commonPrefixes.push(entry);
    last = entry;
    taken++;
  }
  return page;
}
