/**
 * The egress policy every outbound URL passes (webhook subscribers, HTTP rewards, generator fleets):
 * http(s) only; link-local and cloud-metadata addresses always refused; loopback and private ranges
 * only when the operator allows them (TRAINER_EGRESS_ALLOW_PRIVATE, set by the local stack). Checked
 * when a URL is configured (by its literal host) and again when it is connected to (by every address
 * its host resolves to), so a name that points at 169.254.169.254 is refused too.
 */
import ipaddr from "ipaddr.js";
import { err, type Failure, ok, type Result } from "../result/index.ts";

/** The operator's choices. */
export interface EgressPolicy {
  /** Allow loopback, RFC 1918, unique-local (fc00::/7) and CGNAT addresses (local stacks, private fleets). */
  allowPrivate: boolean;
}

/** Ranges (ipaddr.js names) reachable only with `allowPrivate`. */
const PRIVATE = new Set(["loopback", "private", "uniqueLocal", "carrierGradeNat", "unspecified"]);

/**
 * Cloud metadata endpoints outside the link-local ranges, refused even where private addresses
 * are allowed: AWS's IPv6 IMDS (in fd00::/8), Alibaba Cloud's (in 100.64/10, carrier-grade NAT)
 * and Azure's wireserver (a public address).
 */
const METADATA = new Set(["fd00:ec2::254", "100.100.100.200", "168.63.129.16"]);

/** Why an address is refused, or null when the policy allows it. */
export function refuseAddress(address: string, policy: EgressPolicy): string | null {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  let ip = ipaddr.parse(address);
  if (ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    ip = (ip as ipaddr.IPv6).toIPv4Address();
  }
  const range = ip.range();
  if (METADATA.has(ip.toString()) || range === "linkLocal") {
    return `${address} is a link-local or cloud-metadata address`;
  }
  if (PRIVATE.has(range)) {
    return policy.allowPrivate
      ? null
      : `${address} is a ${range} address (allowed only with TRAINER_EGRESS_ALLOW_PRIVATE=true)`;
  }
  if (range !== "unicast") return `${address} is a ${range} address`;
  return null;
}

/**
 * Checks a URL before it is stored: its scheme, and its host when that is an IP literal or
 * `localhost`. Hostnames are checked again at connect time ({@link egressFetch}).
 */
export function checkEgressUrl(url: string, policy: EgressPolicy): Result<URL, Failure> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return err({ message: "must be an absolute http(s) URL" });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return err({ message: `scheme ${u.protocol} is not allowed (http and https only)` });
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const literal = ipaddr.isValid(host)
    ? host
    : host === "localhost" || host.endsWith(".localhost")
      ? "127.0.0.1"
      : null;
  if (literal !== null) {
    const why = refuseAddress(literal, policy);
    if (why !== null) return err({ message: `host ${u.hostname}: ${why}` });
  }
  return ok(u);
}
