import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { checkEgressUrl, type EgressPolicy } from "@loracast/shared/egress";
import type { Logger } from "@loracast/shared/platform";
import { err, type Failure, ok, type Result } from "@loracast/shared/result";
import type { Subscription } from "@loracast/shared/trainer-api";
import type { Delivery, DeliveryTarget } from "@loracast/shared/webhooks";
import { addressUrl, fanOutTemplate, type ResolveAddresses } from "./dns-fan-out.ts";

export type { Subscription };

/**
 * How `dns+` subscribers are expanded (`dns-fan-out.ts`): the resolver, the egress policy each
 * address must pass, and where refusals and failed lookups are logged.
 */
export interface FanOutOptions {
  resolve: ResolveAddresses;
  egress: EgressPolicy;
  log: Logger;
}

/**
 * Webhook subscribers: static ones from config plus ones registered over the API, kept in a file.
 * A static subscriber may be a `dns+http(s)://` fan-out (`dns-fan-out.ts`), expanded to one target
 * per address at each event when `fanOut` is given.
 */
export class SubscriptionRegistry {
  private registered: Subscription[] = [];

  constructor(
    private readonly file: string,
    private readonly staticUrls: readonly string[],
    private readonly fanOut: FanOutOptions | null = null,
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

  /**
   * The subscribers as they stand now: each one as listed, but a `dns+` subscriber as one entry
   * per address its name has (same `id`, `url` the address's URL, `via` the subscriber). An address
   * the egress policy refuses is left out and logged; so is a `dns+` subscriber whose lookup fails
   * (generators that miss an event converge by reconciling with the store).
   */
  async resolved(): Promise<(Subscription & { via?: string })[]> {
    const out: (Subscription & { via?: string })[] = [];
    for (const sub of this.list()) {
      const template = fanOutTemplate(sub.url);
      if (template === null) {
        out.push(sub);
        continue;
      }
      const addresses = await this.addressesOf(sub.url, template);
      if (!addresses.ok) {
        const error = addresses.error.message;
        this.fanOut?.log.warn("webhook fan-out lookup failed", { subscriber: sub.url, error });
        continue;
      }
      out.push(...addresses.value.map((url) => ({ ...sub, url, via: sub.url })));
    }
    return out;
  }

  /** Where the next event goes: {@link resolved}'s URLs, each once, with the `dns+` subscriber they came from. */
  async targets(): Promise<DeliveryTarget[]> {
    const out = new Map<string, DeliveryTarget>();
    for (const { url, via } of await this.resolved()) {
      if (!out.has(url)) out.set(url, via === undefined ? { url } : { url, via });
    }
    return [...out.values()];
  }

  /**
   * Whether a pending delivery still has its subscriber: a fan-out delivery while its address is
   * still among its name's addresses, any other while its URL is still subscribed. Rejects when
   * the lookup fails (the outbox then keeps the delivery).
   */
  async stillWanted(d: Delivery): Promise<boolean> {
    if (d.via === undefined) return this.urls().includes(d.url);
    const template = fanOutTemplate(d.via);
    if (template === null || !this.urls().includes(d.via)) return false;
    const addresses = await this.addressesOf(d.via, template);
    if (!addresses.ok) throw new Error(addresses.error.message);
    return addresses.value.includes(d.url);
  }

  /** The URLs of a `dns+` subscriber's addresses now, those the egress policy allows. */
  private async addressesOf(subscriber: string, template: string): Promise<Result<string[], Failure>> {
    if (this.fanOut === null) return err({ message: "DNS fan-out is not configured" });
    const { resolve, egress, log } = this.fanOut;
    const base = new URL(template);
    let addresses: string[];
    try {
      addresses = await resolve(base.hostname);
    } catch (e) {
      return err({ message: `${base.hostname}: ${(e as Error).message}` });
    }
    const urls: string[] = [];
    for (const a of addresses) {
      const url = addressUrl(base, a);
      const checked = checkEgressUrl(url, egress);
      if (checked.ok) urls.push(url);
      else log.warn("webhook fan-out address refused", { subscriber, error: checked.error.message });
    }
    return ok(urls);
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
