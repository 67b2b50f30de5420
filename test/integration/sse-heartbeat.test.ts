/**
 * A quiet run's event stream keeps sending: a real trainer (TRAINER_SSE_HEARTBEAT_S=0.2) trains a
 * run whose HTTP reward endpoint holds every request, so the run sends no event while it waits.
 * The raw stream carries `: ping` comments meanwhile; readSse (the CLI's and bench's client) and
 * readRunEvents (the tests') see only the run's events; once the reward answers, the run ends and
 * so does its stream.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readSse, SSE_HEARTBEAT } from "@loracast/shared/platform";
import { runStreamEventSchema } from "@loracast/shared/trainer-api";
import { type Stack, startStack } from "../helpers/stack.ts";
import { buildTrainingFixture, grpoRun, postJson, readRunEvents } from "../helpers/training.ts";

/** A reward endpoint that answers `{reward: 1}` only once `release()` is called. */
async function heldReward() {
  let release = (): void => undefined;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let firstCall = (): void => undefined;
  const called = new Promise<void>((r) => {
    firstCall = r;
  });
  const server: Server = createServer((req, res) => {
    req.resume();
    firstCall();
    void released.then(() => res.writeHead(200, { "content-type": "application/json" }).end('{"reward":1}'));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/score`, called, release };
}

describe("SSE heartbeat on a run's event stream", () => {
  let stack: Stack;
  let work: string;
  let dataset: string;
  let reward: Awaited<ReturnType<typeof heldReward>>;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "loracast-heartbeat-"));
    const fixture = await buildTrainingFixture(work);
    dataset = fixture.dataset;
    reward = await heldReward();
    stack = await startStack({
      trainerEnv: {
        TRAINER_MODEL_DIR: fixture.modelDir,
        TRAINER_THREADS: "1",
        TRAINER_SSE_HEARTBEAT_S: "0.2",
      },
    });
  });
  after(async () => {
    reward?.release();
    await stack?.stop();
    await new Promise((r) => reward?.server.close(r));
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("sends `: ping` while the run waits on its reward; clients see only the run's events", async () => {
    const run = "quiet";
    const created = await postJson(`${stack.trainer.url}/v1/runs`, {
      ...grpoRun(run, dataset, 1),
      promptsPerStep: 1,
      algorithm: { name: "grpo", numGenerations: 2, lossType: "dapo" },
      rewards: [{ type: "http", url: reward.url, timeoutMs: 120_000, retries: 0 }],
    });
    assert.equal(created.status, 201, await created.text());
    await reward.called;

    const url = `${stack.trainer.url}/v1/runs/${run}/events`;
    // What readSse yields, from the start of the stream to its end.
    const parsed = (async () => {
      const out: unknown[] = [];
      for await (const data of readSse(url)) out.push(data);
      return out;
    })();
    // The raw stream over 1.5 s of the run's quiet: about 7 heartbeats at one per 0.2 s.
    const res = await fetch(url);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let raw = "";
    const deadline = new Promise<"deadline">((r) => setTimeout(() => r("deadline"), 1500));
    for (;;) {
      const chunk = await Promise.race([reader.read(), deadline]);
      if (chunk === "deadline" || chunk.done) break;
      raw += decoder.decode(chunk.value, { stream: true });
    }
    const pings = raw.split(SSE_HEARTBEAT).length - 1;
    assert.ok(pings >= 3, `${pings} heartbeats in 1.5 s of a quiet run: ${JSON.stringify(raw.slice(-400))}`);
    for (const block of raw.split("\n\n").filter((b) => b !== "" && b !== ": ping"))
      assert.match(block, /^event: \w+\ndata: \{.*\}\nid: \d+$/s, block);

    reward.release();
    for (;;) if ((await reader.read()).done) break;
    const events = (await parsed).map((d) => runStreamEventSchema.parse(d));
    const last = events.at(-1);
    assert.equal(last?.type, "status");
    assert.equal(last?.type === "status" ? last.status : null, "completed");
    // The whole history again, through the tests' parser: the same events, no heartbeat among them.
    const frames = await readRunEvents(url);
    assert.deepEqual(
      frames.map((f) => f.data),
      events,
    );
  });
});
