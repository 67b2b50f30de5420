import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "@loracast/shared/platform";
import type { Delivery } from "@loracast/shared/webhooks";
import { SubscriptionRegistry } from "./subscriptions.ts";

const FAN_OUT = "dns+http://generators.loracast.svc:8080/v1/webhooks/adapters";
const STATIC = "http://10.1.0.9:8080/v1/webhooks/adapters";

/** A registry whose `dns+` names resolve from `zone` (a name missing there is a failed lookup). */
function registry(zone: Map<string, string[]>, lines: string[] = []) {
  const log = createLogger({}, { write: (l: string) => void lines.push(l) });
  const resolve = async (name: string): Promise<string[]> => {
    const addresses = zone.get(name);
    if (addresses === undefined) throw new Error("queryA ETIMEOUT");
    return addresses;
  };
  return new SubscriptionRegistry("/nonexistent/subscriptions.json", [STATIC, FAN_OUT], {
    resolve,
    egress: { allowPrivate: true },
    log,
  });
}

const delivery = (url: string, via?: string): Delivery => ({
  id: "msg_1",
  url,
  ...(via === undefined ? {} : { via }),
  event: {
    type: "adapter.published",
    run: "r",
    version: 1,
    manifestKey: "k",
    manifestSha256: "a".repeat(64),
  },
  createdAt: 0,
});

describe("subscriptions: dns+ fan-out", () => {
  it("sends one delivery per address the name has now, port and path kept, IPv6 in brackets", async () => {
    const zone = new Map([["generators.loracast.svc", ["10.1.0.4", "10.1.0.5", "fd12::7"]]]);
    assert.deepEqual(await registry(zone).targets(), [
      { url: STATIC },
      { url: "http://10.1.0.4:8080/v1/webhooks/adapters", via: FAN_OUT },
      { url: "http://10.1.0.5:8080/v1/webhooks/adapters", via: FAN_OUT },
      { url: "http://[fd12::7]:8080/v1/webhooks/adapters", via: FAN_OUT },
    ]);
    zone.set("generators.loracast.svc", ["10.1.0.5"]);
    assert.deepEqual(
      (await registry(zone).targets()).map((t) => t.url),
      [STATIC, "http://10.1.0.5:8080/v1/webhooks/adapters"],
    );
  });

  it("leaves out addresses the egress policy refuses, and a name whose lookup fails, and says so", async () => {
    const lines: string[] = [];
    const zone = new Map([["generators.loracast.svc", ["10.1.0.4", "169.254.169.254"]]]);
    assert.deepEqual(
      (await registry(zone, lines).targets()).map((t) => t.url),
      [STATIC, "http://10.1.0.4:8080/v1/webhooks/adapters"],
    );
    // One JSON object a line; its fields' order is the logger's (pino writes `msg` last).
    const logged = () => lines.map((l) => JSON.parse(l) as { msg: string; error?: string });
    assert.ok(
      logged().some(
        (l) => l.msg === "webhook fan-out address refused" && /169\.254\.169\.254/.test(l.error ?? ""),
      ),
      lines.join("\n"),
    );
    assert.deepEqual(await registry(new Map(), lines).targets(), [{ url: STATIC }]);
    assert.ok(
      logged().some(
        (l) =>
          l.msg === "webhook fan-out lookup failed" &&
          /generators\.loracast\.svc: queryA ETIMEOUT/.test(JSON.stringify(l)),
      ),
      lines.join("\n"),
    );
  });

  it("wants a pending delivery while its address stays in the name, and keeps it when the lookup fails", async () => {
    const zone = new Map([["generators.loracast.svc", ["10.1.0.4", "10.1.0.5"]]]);
    const subs = registry(zone);
    const gone = delivery("http://10.1.0.4:8080/v1/webhooks/adapters", FAN_OUT);
    assert.equal(await subs.stillWanted(gone), true);
    zone.set("generators.loracast.svc", ["10.1.0.5"]);
    assert.equal(await subs.stillWanted(gone), false);
    assert.equal(await subs.stillWanted(delivery(STATIC)), true);
    assert.equal(await subs.stillWanted(delivery("http://10.9.9.9/removed")), false);
    zone.delete("generators.loracast.svc");
    await assert.rejects(subs.stillWanted(gone), /ETIMEOUT/);
  });
});
