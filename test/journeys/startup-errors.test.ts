/**
 * Start-up against a store that is down or misconfigured (issue 14, item 8), on real processes:
 * the trainer and a generator started as `npm -w … start` would, against (a) a closed port, where
 * they retry with one line per attempt naming S3_ENDPOINT and exit 1 when S3_STARTUP_TIMEOUT_S runs
 * out, or come up once S3 appears on that port in time; (b) the embedded S3 server with a missing
 * bucket or a wrong key, where they exit 2 at once with one line naming S3_BUCKET or
 * S3_ACCESS_KEY_ID; (c) a generator without MANIFEST_PUBLIC_KEYS, which exits 2 naming it unless
 * GENERATOR_ALLOW_UNSIGNED=true, when it starts and warns. A hung S3 (stopped with SIGSTOP: it
 * accepts connections and never answers) gets a line per attempt too. Never a stack trace.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LLAMA_CONFIG, ROOT } from "@loracast/dev-support/fixtures";
import type { Service } from "@loracast/dev-support/supervisor";
import { Signer } from "@loracast/shared/signing";
import { freePortRange } from "../helpers/local-stack.ts";
import { captureLines } from "../helpers/output-lines.ts";
import { s3Env, startS3 } from "../helpers/s3.ts";
import { SECRET, TOKEN } from "../helpers/stack.ts";

type Kind = "trainer" | "generator";

interface Started {
  proc: ChildProcess;
  /** stdout and stderr, one entry per line. */
  lines: string[];
  /** The exit code, or null when it was ended by a signal. */
  exited: Promise<number | null>;
  /** Resolves with the first line (past or future) that matches. */
  waitForLine(match: RegExp, timeoutMs: number): Promise<string>;
}

/** A trainer's public key, for generators that must trust one to start. */
const PUBLIC_KEY = Signer.generate().publicKey;

const work = mkdtempSync(join(tmpdir(), "loracast-startup-"));
const running: Started[] = [];

/** Starts a service as its package's start script does, with only `env` (plus PATH) set. */
function start(kind: Kind, env: Record<string, string>): Started {
  const own: Record<Kind, Record<string, string>> = {
    trainer: {
      TRAINER_PORT: "0",
      TRAINER_DATA_DIR: mkdtempSync(join(work, "trainer-")),
      TRAINER_API_TOKEN: TOKEN,
      WEBHOOK_SECRET: SECRET,
    },
    generator: {
      GENERATOR_PORT: "0",
      GENERATOR_BASE_CONFIG: LLAMA_CONFIG,
      WEBHOOK_SECRETS: SECRET,
      MANIFEST_PUBLIC_KEYS: PUBLIC_KEY,
    },
  };
  const proc = spawn(process.execPath, ["--import", "tsx", `services/${kind}/src/main.ts`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...own[kind], ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { lines, waitForLine } = captureLines(proc, kind);
  const exited = once(proc, "exit").then(([code]) => code as number | null);
  const started: Started = {
    proc,
    lines,
    exited,
    waitForLine,
  };
  running.push(started);
  return started;
}

function kill(s: Started): void {
  if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill("SIGKILL");
}

/** Waits for the exit, failing (and killing it) if it takes longer than `timeoutMs`. */
async function exitCode(s: Started, timeoutMs: number): Promise<number | null> {
  const timer = setTimeout(() => s.proc.kill("SIGKILL"), timeoutMs);
  const code = await s.exited;
  clearTimeout(timer);
  assert.notEqual(
    s.proc.signalCode,
    "SIGKILL",
    `still running after ${timeoutMs} ms:\n${s.lines.join("\n")}`,
  );
  return code;
}

interface LogLine {
  level: string;
  msg: string;
  variable?: string;
}

const logLines = (s: Started): LogLine[] =>
  s.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);

/** No line of a stack trace anywhere in the output. */
function assertNoStack(s: Started): void {
  const stack = s.lines.filter((l) => /^\s+at /.test(l));
  assert.deepEqual(stack, [], `stack trace in the output:\n${s.lines.join("\n")}`);
}

/** Exactly one error line, and it names `variable` in words and in its `variable` field. */
function assertOneErrorNaming(s: Started, variable: string): LogLine {
  const errors = logLines(s).filter((l) => l.level === "error");
  assert.equal(errors.length, 1, `one error line:\n${s.lines.join("\n")}`);
  const line = errors[0] as LogLine;
  assert.equal(line.variable, variable);
  assert.ok(line.msg.includes(variable), line.msg);
  return line;
}

describe("start-up against a store that is down or misconfigured", () => {
  let s3: Service & { dir: string };
  after(async () => {
    for (const s of running) kill(s);
    await s3?.stop();
    rmSync(work, { recursive: true, force: true });
  });
  before(async () => {
    s3 = await startS3(join(work, "s3"));
  });

  it("(a) a closed port: a line per attempt naming S3_ENDPOINT, then exit 1 with one line", async () => {
    const port = await freePortRange(1);
    const env = { ...s3Env(`http://127.0.0.1:${port}`), S3_STARTUP_TIMEOUT_S: "3" };
    const services = [start("trainer", env), start("generator", env)];
    for (const s of services) {
      assert.equal(await exitCode(s, 60_000), 1, s.lines.join("\n"));
      assertNoStack(s);
      const error = assertOneErrorNaming(s, "S3_ENDPOINT");
      assert.match(error.msg, /unreachable .*S3_STARTUP_TIMEOUT_S/);
      const attempts = logLines(s).filter((l) => l.level === "warn");
      assert.ok(attempts.length >= 1, "at least one retry was logged");
      for (const a of attempts) {
        assert.equal(a.variable, "S3_ENDPOINT");
        assert.match(a.msg, /S3_ENDPOINT http:\/\/127\.0\.0\.1:\d+ is unreachable .*retrying/);
      }
    }
  });

  it("(a) a hung S3 (SIGSTOP): a line per attempt as each runs out of time, then exit 1", async () => {
    const hung = await startS3(join(work, "hung-s3"));
    hung.proc.kill("SIGSTOP");
    try {
      const s = start("trainer", { ...s3Env(hung.url), S3_STARTUP_TIMEOUT_S: "14" });
      assert.equal(await exitCode(s, 60_000), 1, s.lines.join("\n"));
      assertNoStack(s);
      assert.match(assertOneErrorNaming(s, "S3_ENDPOINT").msg, /no answer .*S3_STARTUP_TIMEOUT_S/);
      const attempts = logLines(s).filter((l) => l.level === "warn");
      assert.ok(attempts.length >= 2, `a line per attempt:\n${s.lines.join("\n")}`);
      for (const a of attempts) assert.match(a.msg, /is unreachable \(no answer within \d+ s\).*retrying/);
    } finally {
      hung.proc.kill("SIGCONT");
      await hung.stop();
    }
  });

  it("(a) a closed port where S3 comes up within the timeout: both connect and start", async () => {
    const port = await freePortRange(1, process.pid + 1);
    const env = { ...s3Env(`http://127.0.0.1:${port}`), S3_STARTUP_TIMEOUT_S: "120" };
    const services = [start("trainer", env), start("generator", env)];
    for (const s of services) await s.waitForLine(/S3_ENDPOINT .* is unreachable/, 60_000);
    const late = await startS3(join(work, "late-s3"), port);
    try {
      for (const s of services) {
        await s.waitForLine(/"msg":"ready"/, 90_000);
        assertNoStack(s);
        assert.deepEqual(
          logLines(s).filter((l) => l.level === "error"),
          [],
        );
        s.proc.kill("SIGTERM");
        assert.equal(await exitCode(s, 30_000), 0);
      }
    } finally {
      // A service still connected would keep the server's close waiting.
      for (const s of services) kill(s);
      await late.stop();
    }
  });

  it("(b) a missing bucket: exit 2 at once, one line naming S3_BUCKET", async () => {
    const env = { ...s3Env(s3.url), S3_BUCKET: "no-such-bucket" };
    const services = [start("trainer", env), start("generator", env)];
    for (const s of services) {
      assert.equal(await exitCode(s, 60_000), 2, s.lines.join("\n"));
      assertNoStack(s);
      const error = assertOneErrorNaming(s, "S3_BUCKET");
      assert.match(error.msg, /no-such-bucket does not exist/);
      assert.deepEqual(
        logLines(s).filter((l) => l.level === "warn"),
        [],
        "a missing bucket is not retried",
      );
    }
  });

  it("(b) a rejected key: exit 2 at once, one line naming S3_ACCESS_KEY_ID", async () => {
    const env = { ...s3Env(s3.url), S3_ACCESS_KEY_ID: "NOT-A-KEY" };
    const services = [start("trainer", env), start("generator", env)];
    for (const s of services) {
      assert.equal(await exitCode(s, 60_000), 2, s.lines.join("\n"));
      assertNoStack(s);
      assertOneErrorNaming(s, "S3_ACCESS_KEY_ID");
    }
  });

  it("(c) no MANIFEST_PUBLIC_KEYS: exit 2 at once, one line naming it and the trainer's publicKey", async () => {
    const s = start("generator", { ...s3Env(s3.url), MANIFEST_PUBLIC_KEYS: "" });
    assert.equal(await exitCode(s, 60_000), 2, s.lines.join("\n"));
    assertNoStack(s);
    const error = assertOneErrorNaming(s, "MANIFEST_PUBLIC_KEYS");
    assert.match(error.msg, /"msg":"signing", "publicKey"/);
    assert.match(error.msg, /GENERATOR_ALLOW_UNSIGNED=true/);
  });

  it("(c) GENERATOR_ALLOW_UNSIGNED=true without keys: starts, warns, reports signatures not required", async () => {
    const s = start("generator", {
      ...s3Env(s3.url),
      MANIFEST_PUBLIC_KEYS: "",
      GENERATOR_ALLOW_UNSIGNED: "true",
    });
    const ready = JSON.parse(await s.waitForLine(/"msg":"ready"/, 60_000)) as { url: string };
    assert.ok(
      logLines(s).some((l) => l.level === "warn" && l.msg.startsWith("MANIFEST_PUBLIC_KEYS is not set")),
      s.lines.join("\n"),
    );
    const metrics = await (await fetch(`${ready.url}/metrics`)).text();
    assert.match(metrics, /^loracast_manifest_signatures_required 0$/m);
    s.proc.kill("SIGTERM");
    assert.equal(await exitCode(s, 30_000), 0);
  });
});
