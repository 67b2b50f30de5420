import type { ObjectStore } from "./object-store.ts";

/** In-memory twin of the S3 store for unit tests. Always enforces conditional writes. */
export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  /** Each key's entity tag: the store's write count when it was last written, so every write changes it. */
  private readonly writes = new Map<string, number>();
  private written = 0;
  conditionalWrites = true;
  readonly traffic = { uploaded: 0, downloaded: 0 };

  async put(
    key: string,
    body: Uint8Array,
    options: { ifNoneMatch?: boolean } = {},
  ): Promise<"written" | "exists"> {
    if (options.ifNoneMatch && this.objects.has(key)) return "exists";
    this.objects.set(key, new Uint8Array(body));
    this.writes.set(key, ++this.written);
    this.traffic.uploaded += body.byteLength;
    return "written";
  }

  async get(key: string): Promise<Uint8Array | null> {
    const v = this.objects.get(key);
    if (v === undefined) return null;
    this.traffic.downloaded += v.byteLength;
    return new Uint8Array(v);
  }

  async readInto(
    key: string,
    into: Uint8Array,
    onData: (region: Uint8Array) => void,
  ): Promise<number | null> {
    const v = this.objects.get(key);
    if (v === undefined) return null;
    if (v.byteLength !== into.byteLength) return v.byteLength;
    into.set(v);
    onData(into);
    this.traffic.downloaded += v.byteLength;
    return v.byteLength;
  }

  async head(key: string): Promise<{ bytes: number } | null> {
    const v = this.objects.get(key);
    return v === undefined ? null : { bytes: v.byteLength };
  }

  async listEntries(prefix: string, startAfter?: string): Promise<{ key: string; etag: string }[]> {
    const keys = await this.list(prefix, startAfter);
    return keys.map((key) => ({ key, etag: String(this.writes.get(key)) }));
  }

  async list(prefix: string, startAfter?: string): Promise<string[]> {
    return [...this.objects.keys()]
      .filter((k) => k.startsWith(prefix) && (startAfter === undefined || k > startAfter))
      .sort();
  }

  async listSegments(prefix: string): Promise<string[]> {
    const out = new Set<string>();
    for (const k of this.objects.keys()) {
      if (!k.startsWith(prefix)) continue;
      const rest = k.slice(prefix.length);
      // As in S3, a delimiter right at the end of the prefix rolls up too, into the segment "".
      const slash = rest.indexOf("/");
      if (slash >= 0) out.add(rest.slice(0, slash));
    }
    return [...out].sort();
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}
