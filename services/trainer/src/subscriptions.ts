import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** A webhook subscriber: its id and URL, and whether it comes from configuration or the API. */
export interface Subscription {
  id: string;
  url: string;
  /** "static" ones come from WEBHOOK_SUBSCRIBERS and cannot be removed over the API. */
  source: "static" | "api";
}

/** Webhook subscribers: static ones from config plus ones registered over the API, kept in a file. */
export class SubscriptionRegistry {
  private registered: Subscription[] = [];

  constructor(
    private readonly file: string,
    private readonly staticUrls: readonly string[],
  ) {}

  async load(): Promise<void> {
    try {
      this.registered = JSON.parse(await readFile(this.file, "utf8")) as Subscription[];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }

  list(): Subscription[] {
    return [
      ...this.staticUrls.map((url, i) => ({ id: `static-${i}`, url, source: "static" as const })),
      ...this.registered,
    ];
  }

  urls(): string[] {
    return [...new Set(this.list().map((s) => s.url))];
  }

  async add(url: string): Promise<Subscription> {
    const existing = this.list().find((s) => s.url === url);
    if (existing !== undefined) return existing;
    const sub: Subscription = { id: `sub_${randomUUID()}`, url, source: "api" };
    this.registered.push(sub);
    await this.save();
    return sub;
  }

  async remove(id: string): Promise<boolean> {
    const before = this.registered.length;
    this.registered = this.registered.filter((s) => s.id !== id);
    if (this.registered.length === before) return false;
    await this.save();
    return true;
  }

  private async save(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify(this.registered, null, 2));
    await rename(tmp, this.file);
  }
}
