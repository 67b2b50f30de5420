/**
 * SIGTERM drains (issue 20: what containers and Kubernetes rely on to stop a service without
 * failing requests), on a real trainer process over real HTTP: a request still arriving when SIGTERM
 * lands (its body sent in two halves, 500 ms apart) gets its full answer, connections that come after
 * it are refused, and only then does the process exit, with 0. Before the drain, `close()` dropped
 * every open connection, and such a request got a reset.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { type Service, startService } from "@loracast/dev-support/supervisor";
import { s3Env, startS3 } from "../helpers/s3.ts";
import { SECRET, TOKEN } from "../helpers/stack.ts";

/** The trainer's answer to a POST whose body arrives in two halves, `pauseMs` apart; `during` runs in the pause. */
function slowPost(
  url: string,
  path: string,
  body: string,
  pauseMs: number,
  during: () => void,
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        path,
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    const half = Math.floor(body.length / 2);
    req.write(body.slice(0, half));
    setTimeout(() => {
      during();
      setTimeout(() => req.end(body.slice(half)), pauseMs);
    }, 100);
  });
}

describe("SIGTERM with a request in flight", () => {
  let s3: Service & { dir: string };
  const work = mkdtempSync(join(tmpdir(), "loracast-drain-"));
  before(async () => {
    s3 = await startS3();
  });
  after(async () => {
    await s3?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("the trainer answers the request in full, refuses new connections, then exits 0", async () => {
    const trainer = await startService("trainer", {
      ...s3Env(s3.url),
      TRAINER_PORT: "0",
      TRAINER_DATA_DIR: join(work, "trainer"),
      TRAINER_API_TOKEN: TOKEN,
      WEBHOOK_SECRET: SECRET,
    });
    let exitedEarly = false;
    void trainer.exited.then(() => {
      exitedEarly = true;
    });
    // A subscription: a JSON body the trainer parses only once the whole of it has arrived.
    const body = JSON.stringify({ url: "https://generator.example/v1/webhooks/adapters" });
    let refused: Promise<unknown> = Promise.resolve();
    const answer = await slowPost(trainer.url, "/v1/subscriptions", body, 500, () => {
      trainer.proc.kill("SIGTERM");
      // Given the signal a moment to land: the listener is closed, a new connection is refused.
      refused = delay(200).then(() =>
        fetch(`${trainer.url}/healthz`).then(
          () => "answered",
          () => "refused",
        ),
      );
    });
    assert.equal(exitedEarly, false, "the trainer exited before answering the request in flight");
    assert.ok(answer.status > 0 && answer.status < 500, `${answer.status} ${answer.body}`);
    assert.match(answer.body, /generator\.example/);
    assert.equal(await refused, "refused");
    const exit = await trainer.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});
