/**
 * `npm start` as a user runs it (issue 14, items 4 and 5): Ctrl-C at any step stops everything
 * cleanly, the next start finishes the demo, a busy port is one clear line, and a service killed while
 * the stack is up is reported and the stack stops. Choices are drawn from a seeded RNG; the seed is
 * printed (set JOURNEY_SEED to replay one).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stackPorts } from "@loracast/dev-support/stack";
import { createRng } from "@loracast/shared/random";
import { runVersionsSchema } from "@loracast/shared/trainer-api";
import {
  freePortRange,
  groupMembers,
  type LocalStackRun,
  portOpen,
  startLocalStack,
  waitGroupGone,
} from "../helpers/local-stack.ts";

const seed = Number(process.env.JOURNEY_SEED ?? Date.now() % 1_000_000);
console.log(`local-stack journeys: JOURNEY_SEED=${seed}`);
const rng = createRng(seed);
const STEPS = 6;

/** A crash trace's marks: an uncaught error's name line or a stack frame. */
const CRASH = /^\s+at |^\w*Error\b|Uncaught|node:internal/m;

/** Waits for every process `npm start` started to be gone and every port to be closed. */
async function assertAllGone(run: LocalStackRun, ports: number[]): Promise<void> {
  assert.deepEqual(await waitGroupGone(run.pgid, 30_000), [], "no process of the stack is left");
  for (const p of ports) assert.equal(await portOpen(p), false, `port ${p} is closed`);
}

/** The pid of the group's service process whose environment holds `variable=value`. */
function servicePid(run: LocalStackRun, variable: string, value: string): number {
  for (const pid of groupMembers(run.pgid)) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      if (env.includes(`${variable}=${value}`)) return pid;
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error(`no process with ${variable}=${value} in group ${run.pgid}`);
}

describe("npm start as a user runs it", () => {
  let data: string;
  let base: number;
  let ports: number[];
  let env: Record<string, string>;
  const runs: LocalStackRun[] = [];
  const start = (extra: Record<string, string> = {}): LocalStackRun => {
    const run = startLocalStack({ ...env, ...extra });
    runs.push(run);
    return run;
  };

  before(async () => {
    data = mkdtempSync(join(tmpdir(), "loracast-journey-"));
    base = await freePortRange(4, seed);
    const p = stackPorts(base);
    ports = [p.s3, p.trainer, ...p.generators];
    env = { LORACAST_DATA_DIR: data, LORACAST_BASE_PORT: String(base), LORACAST_DEMO_STEPS: String(STEPS) };
  });
  after(() => {
    for (const r of runs) r.killGroup();
    rmSync(data, { recursive: true, force: true });
  });

  it("Ctrl-C at a random demo step prints `stopped.` and leaves no process or port", async () => {
    const step = 1 + rng.int(STEPS - 2);
    console.log(`  Ctrl-C after demo step ${step}/${STEPS}`);
    const run = start();
    await run.waitForLine(new RegExp(`step +${step}/${STEPS} `), 180_000);
    await run.interrupt();
    await assertAllGone(run, ports);
    assert.match(run.text(), /^stopped\.$/m);
    assert.doesNotMatch(run.text(), CRASH);
  });

  it("the next npm start on that data dir carries the demo's run to its end", async () => {
    const record = JSON.parse(readFileSync(join(data, "trainer", "runs", "digits-1.json"), "utf8")) as {
      status: string;
    };
    const run = start();
    const summary = await run.waitForLine(/^demo summary /, 180_000);
    if (record.status === "running") {
      // Interrupted mid-run: the trainer resumed it, and the demo follows it instead of a new one.
      assert.match(run.text(), /demo: continuing GRPO run digits-1\b/);
      assert.equal(summary, "demo summary (digits-1)");
      assert.match(run.text(), /^ {2}resumed from the checkpoint at step \d+/m);
      // The summary counts the run's steps once and every version it published, as the store does.
      const steps = await run.waitForLine(/^ {2}steps +/);
      assert.match(
        steps,
        new RegExp(`^ {2}steps +${STEPS}; resumed after step \\d+, .* since the demo attached$`),
      );
      const line = await run.waitForLine(/^ {2}versions +/);
      const m = /^ {2}versions +(\d+) published \(v(\d+)…v(\d+)\)/.exec(line);
      assert.ok(m !== null, line);
      const listed = runVersionsSchema.parse(
        await (await fetch(`http://127.0.0.1:${stackPorts(base).trainer}/v1/runs/digits-1/versions`)).json(),
      );
      const numbers = listed.versions.map((v) => v.version).sort((a, b) => a - b);
      assert.deepEqual(
        [Number(m[1]), Number(m[2]), Number(m[3])],
        [numbers.length, numbers[0], numbers.at(-1)],
        `the summary's versions are the store's: ${line}`,
      );
    } else {
      // The run had finished just before the Ctrl-C: a fresh one.
      assert.equal(summary, "demo summary (digits-2)");
    }
    const hint = await run.waitForLine(/"model": /);
    assert.match(hint, /"model": "digits-\d+"/, "the hint names the run, not a placeholder");
    await run.waitForLine(/^Ctrl-C stops everything\.$/);
    await run.interrupt();
    await assertAllGone(run, ports);
    assert.match(run.text(), /^stopped\.$/m);
    assert.doesNotMatch(run.text(), CRASH);
  });

  it("a busy port: one line naming it and LORACAST_BASE_PORT, exit 1, nothing left running", async () => {
    const busy = ports[rng.int(ports.length)] as number;
    console.log(`  port ${busy} busy`);
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(busy, "127.0.0.1", resolve));
    try {
      const run = start({ LORACAST_DEMO: "false" });
      const exit = await run.exited;
      assert.equal(exit.code, 1);
      const said = run.lines.filter((l) => l.includes(String(busy)));
      assert.equal(said.length, 1, `one line names port ${busy}:\n${run.text()}`);
      assert.match(said[0] as string, /already in use.*LORACAST_BASE_PORT/);
      assert.doesNotMatch(run.text(), CRASH);
      await assertAllGone(
        run,
        ports.filter((p) => p !== busy),
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it("a service that refuses to start: one line naming it and why, exit 1, nothing left running", async () => {
    const broken = mkdtempSync(join(tmpdir(), "loracast-journey-"));
    try {
      mkdirSync(join(broken, "trainer", "runs"), { recursive: true });
      writeFileSync(join(broken, "trainer", "runs", "torn.json"), '{"status": "running"');
      const run = start({ LORACAST_DATA_DIR: broken, LORACAST_DEMO: "false" });
      const exit = await run.exited;
      assert.equal(exit.code, 1);
      const said = run.lines.filter((l) => l.startsWith("trainer"));
      assert.deepEqual(said.length, 1, run.text());
      assert.match(said[0] as string, /^trainer did not start: SyntaxError: .*JSON/);
      assert.doesNotMatch(run.text(), CRASH);
      await assertAllGone(run, ports);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it("kill -9 of a service while the stack is up: the stack names it and stops everything", async () => {
    const victims = [
      { name: "trainer", variable: "TRAINER_PORT", value: String(base + 1) },
      { name: "generator-0", variable: "GENERATOR_NAME", value: "generator-0" },
      { name: "generator-1", variable: "GENERATOR_NAME", value: "generator-1" },
    ];
    const victim = victims[rng.int(victims.length)] as (typeof victims)[number];
    console.log(`  kill -9 ${victim.name}`);
    const run = start({ LORACAST_DEMO: "false" });
    await run.waitForLine(/^Ctrl-C stops everything\.$/, 180_000);
    process.kill(servicePid(run, victim.variable, victim.value), "SIGKILL");
    await run.waitForLine(
      new RegExp(`^${victim.name} exited unexpectedly \\(SIGKILL\\); stopping the stack\\.$`),
      30_000,
    );
    const exit = await run.exited;
    assert.equal(exit.code, 1);
    await assertAllGone(run, ports);
    assert.match(run.text(), /^stopped\.$/m);
    assert.doesNotMatch(run.text(), CRASH);
  });
});
