/**
 * A small authoritative DNS server on loopback (UDP, dns-packet for the wire format), playing the
 * cluster DNS that answers a Kubernetes headless Service's name with one record per ready pod. The
 * test changes a name's addresses as replicas come and go, as the endpoints controller does.
 */
import { createSocket } from "node:dgram";
import dnsPacket from "dns-packet";

/** RCODE 3: the name does not exist. */
const NXDOMAIN = 3;

/** A running server: `address` is `127.0.0.1:<port>` (a `TRAINER_DNS_SERVERS` entry). */
export interface DnsServer {
  readonly address: string;
  /** Sets the addresses `name` answers with (IPv4 as A, IPv6 as AAAA); an empty list is NXDOMAIN. */
  set(name: string, addresses: readonly string[]): void;
  /** How many questions it has answered. */
  readonly queries: number;
  stop(): Promise<void>;
}

/** Starts a server on 127.0.0.1 (any free port) that answers A and AAAA from its zone, with TTL 0. */
export async function startDnsServer(): Promise<DnsServer> {
  const zone = new Map<string, readonly string[]>();
  const socket = createSocket("udp4");
  let queries = 0;
  socket.on("message", (message, peer) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // not DNS: nothing to answer
    }
    queries++;
    const question = query.questions?.[0];
    const name = question?.name.toLowerCase() ?? "";
    const all = zone.get(name) ?? [];
    const answers: dnsPacket.Answer[] = [];
    for (const data of all) {
      const type = data.includes(":") ? "AAAA" : "A";
      if (question?.type === type) answers.push({ type, name: question.name, ttl: 0, data });
    }
    const reply = dnsPacket.encode({
      type: "response",
      id: query.id ?? 0,
      // The response code is the flags' low 4 bits (RFC 1035 4.1.1); dns-packet has no field for it.
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (all.length === 0 ? NXDOMAIN : 0),
      questions: query.questions ?? [],
      answers,
    });
    socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    set: (name, addresses) => void zone.set(name.toLowerCase(), [...addresses]),
    get queries() {
      return queries;
    },
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
