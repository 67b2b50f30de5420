import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import type { LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import { Agent, buildConnector, fetch as undiciFetch } from "undici";
import { checkEgressUrl, type EgressPolicy, refuseAddress } from "./policy.ts";

/** Thrown (as the fetch's rejection) when the policy refuses a URL or the address its host resolves to. */
export class EgressRefused extends Error {
  override name = "EgressRefused";
}

/**
 * A `fetch` that applies the egress policy: the URL is checked as {@link checkEgressUrl}, then every
 * connection (redirects included) checks its host: an IP literal as it is, a name by every address
 * it resolves to, inside the DNS lookup the socket uses, so a name cannot be re-pointed between the
 * check and the connect. Refusals reject with {@link EgressRefused}. A URL's userinfo
 * (`https://user:pass@host/`, which fetch refuses) is sent as HTTP Basic credentials instead,
 * unless the request sets its own `authorization`.
 */
export function egressFetch(policy: EgressPolicy): typeof fetch {
  const lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error !== null) return callback(error, "", 0);
      for (const a of addresses) {
        const why = refuseAddress(a.address, policy);
        if (why !== null) {
          return callback(new EgressRefused(`host ${hostname} resolves to ${why}`), "", 0);
        }
      }
      if (options.all === true) return (callback as unknown as AllCallback)(null, addresses);
      const first = addresses[0];
      if (first === undefined) return callback(new EgressRefused(`host ${hostname} has no address`), "", 0);
      return callback(null, first.address, first.family);
    });
  };
  const base = buildConnector({ lookup });
  // Sockets to IP literals skip the lookup (a redirect to http://169.254.169.254/, say): check them here.
  const connect: buildConnector.connector = (options, callback) => {
    const host = options.hostname.replace(/^\[|\]$/g, "");
    const why = ipaddr.isValid(host) ? refuseAddress(host, policy) : null;
    if (why !== null) return callback(new EgressRefused(`host ${options.hostname}: ${why}`), null);
    return base(options, callback);
  };
  const dispatcher = new Agent({ connect });
  return (async (input: string | URL | Request, init?: RequestInit) => {
    // Callers pass URLs; a Request would carry a method and body this wrapper does not forward.
    if (input instanceof Request) throw new TypeError("egressFetch takes a URL, not a Request");
    const url = typeof input === "string" ? input : input.href;
    const checked = checkEgressUrl(url, policy);
    if (!checked.ok) throw new EgressRefused(checked.error.message);
    const target = checked.value;
    const headers = new Headers(init?.headers);
    if (target.username !== "" || target.password !== "") {
      const user = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
      if (!headers.has("authorization"))
        headers.set("authorization", `Basic ${Buffer.from(user).toString("base64")}`);
      target.username = "";
      target.password = "";
    }
    try {
      const options = { ...init, headers: Object.fromEntries(headers), dispatcher };
      return await undiciFetch(target.href, options as Parameters<typeof undiciFetch>[1]);
    } catch (e) {
      // undici wraps connect errors as "fetch failed"; surface the policy's reason.
      const cause = (e as { cause?: unknown }).cause;
      if (cause instanceof EgressRefused) throw cause;
      throw e;
    }
  }) as unknown as typeof fetch;
}

type AllCallback = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;
