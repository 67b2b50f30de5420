import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stackPorts } from "@loracast/dev-support/stack";
import { ServiceStartError } from "@loracast/dev-support/supervisor";
import { DemoError } from "./demo-run.ts";
import { describeFailure } from "./failures.ts";

const ports = stackPorts(9000, 2);
const exited = { code: 1, signal: null };
const trace = (line: string) => ["file:///x.ts:1", "", line, "    at Server.setupListenHandle (node:net:1)"];

describe("describeFailure", () => {
  it("names a busy port, the service, the stack's range and LORACAST_BASE_PORT", () => {
    const e = new ServiceStartError(
      "generator-1",
      "exited",
      exited,
      trace("Error: listen EADDRINUSE: address already in use 127.0.0.1:9003"),
      null,
    );
    assert.equal(
      describeFailure(e, ports),
      "port 9003 (generator-1) is already in use. The stack uses ports 9000–9003; choose others with LORACAST_BASE_PORT, e.g. LORACAST_BASE_PORT=9100 npm start",
    );
  });

  it("gives a service's own error line, else the thrown error's line, else how it exited", () => {
    const logged = new ServiceStartError(
      "trainer",
      "exited",
      exited,
      [],
      "cannot load the model: no manifest",
    );
    assert.equal(describeFailure(logged, ports), "trainer did not start: cannot load the model: no manifest");
    const thrown = new ServiceStartError("trainer", "exited", exited, trace("SyntaxError: bad JSON"), null);
    assert.equal(describeFailure(thrown, ports), "trainer did not start: SyntaxError: bad JSON");
    const killed = new ServiceStartError("s3-local", "exited", { code: null, signal: "SIGKILL" }, [], null);
    assert.equal(describeFailure(killed, ports), "s3-local did not start: SIGKILL");
    const slow = new ServiceStartError("generator-0", "timeout", { code: null, signal: "SIGTERM" }, [], null);
    assert.equal(describeFailure(slow, ports), "generator-0 did not get ready in time");
  });

  it("prefixes demo failures and anything else with where they came from", () => {
    assert.equal(
      describeFailure(new DemoError("run digits-1 failed: nan"), ports),
      "demo: run digits-1 failed: nan",
    );
    assert.equal(describeFailure(new Error("EACCES: .data"), ports), "local stack: EACCES: .data");
  });
});
