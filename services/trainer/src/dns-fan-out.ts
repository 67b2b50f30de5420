/**
 * DNS fan-out of webhooks: a subscriber written `dns+http://<name>:<port>/<path>` (or `dns+https`)
 * stands for every address `<name>` resolves to when an event is sent, one delivery each. A
 * Kubernetes headless Service (`clusterIP: None`) answers its name with one A/AAAA record per ready
 * pod, so each generator replica gets its own webhook as replicas come and go, and a delivery
 * whose address has left the name is dropped instead of retried until it expires.
 */
import { Resolver } from "node:dns/promises";
import type { Clock } from "@loracast/shared/platform";

/** The prefix that marks a fan-out subscriber; what follows it is an ordinary http(s) URL. */
const DNS_PREFIX = "dns+";

/** The http(s) URL a `dns+` subscriber stands for, or null when `subscriber` is a plain URL. */
export function fanOutTemplate(subscriber: string): string | null {
  return subscriber.startsWith(DNS_PREFIX) ? subscriber.slice(DNS_PREFIX.length) : null;
}

/** The template URL with its host replaced by `address` (IPv6 in brackets), port and path kept. */
export function addressUrl(template: URL, address: string): string {
  const u = new URL(template.href);
  u.hostname = address.includes(":") ? `[${address}]` : address;
  return u.href;
}

/**
 * Every address `name` has, as one sorted list. NXDOMAIN and no records are an empty list (a
 * headless Service with no ready pod); any other failure (no answer, SERVFAIL) rejects.
 */
export type ResolveAddresses = (name: string) => Promise<string[]>;

/** DNS codes (node:dns) that mean the name has no address, as opposed to no answer. */
const NO_ADDRESS = new Set(["ENOTFOUND", "ENODATA"]);

/**
 * A {@link ResolveAddresses} over DNS (c-ares `resolve4` and `resolve6`, not `/etc/hosts`) through
 * `servers` (`ip` or `ip:port`, node's `Resolver.setServers`), or the system's resolvers
 * (`/etc/resolv.conf`, with its search domains) when empty. Throws at once on a server it cannot
 * parse. Answers are kept `cacheMs` so a round of deliveries to many replicas asks once.
 */
export function dnsResolver(servers: readonly string[], clock: Clock, cacheMs = 1000): ResolveAddresses {
  // Short timeouts: an unanswered lookup holds up a publish's notify step.
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  const family = (lookup: Promise<string[]>): Promise<string[]> =>
    lookup.catch((e: NodeJS.ErrnoException) => {
      if (NO_ADDRESS.has(e.code ?? "")) return [];
      throw e;
    });
  const cache = new Map<string, { at: number; answer: Promise<string[]> }>();
  return (name) => {
    const now = clock.now();
    const hit = cache.get(name);
    if (hit !== undefined && now - hit.at < cacheMs) return hit.answer;
    const answer = Promise.all([family(resolver.resolve4(name)), family(resolver.resolve6(name))]).then(
      ([v4, v6]) => [...new Set([...v4, ...v6])].sort(),
    );
    // A failed lookup is not kept: the next delivery asks again.
    answer.catch(() => cache.delete(name));
    cache.set(name, { at: now, answer });
    return answer;
  };
}
