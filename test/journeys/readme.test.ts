/**
 * The README's commands as a new user runs them (issue 14, item 9): every `sh` block from the
 * Quickstart to "Check the engine against PyTorch", verbatim and in the order given, against a running
 * `npm start`. Only the ports (9000–9003, 8700, 8800) and the data dir (`.data`) are rewritten, to a
 * free range and a temp dir. `npm ci` is skipped (this checkout is installed) and `npm start` runs
 * through the local-stack helper with a 6-step demo. A command that starts a service
 * (`npm -w services/<name> start`, "in its own terminal") runs in the background until its ready line.
 * Every other command must exit 0 and print what the README says it prints.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { ROOT } from "@loracast/dev-support/fixtures";
import { chatCompletionSchema, modelListSchema } from "@loracast/shared/generator-api";
import { freePortRange, type LocalStackRun, startLocalStack, waitGroupGone } from "../helpers/local-stack.ts";

const run = promisify(execFile);

/** The README's shell commands from the Quickstart up to the engine check, one string each. */
function readmeCommands(): string[] {
  const text = readFileSync(join(ROOT, "README.md"), "utf8");
  const from = text.indexOf("## Quickstart");
  const to = text.indexOf("### Check the engine against PyTorch");
  assert.ok(from >= 0 && to > from, "the README has its Quickstart and engine-check sections");
  const commands: string[] = [];
  for (const block of text.slice(from, to).matchAll(/```sh\n([\s\S]*?)```/g)) {
    let current = "";
    let quoted = false;
    for (const line of (block[1] ?? "").split("\n")) {
      if (current === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
      current = current === "" ? line : `${current}\n${line}`;
      // A command goes on while a single-quoted string is open or a line ends in a backslash; outside
      // quotes, `#` after a blank starts a comment (whose apostrophes are no quotes).
      for (let i = 0; i < line.length; i++) {
        if (line[i] === "'") quoted = !quoted;
        else if (!quoted && line[i] === "#" && (i === 0 || /\s/.test(line[i - 1] ?? ""))) break;
      }
      if (!quoted && !line.endsWith("\\")) {
        commands.push(current);
        current = "";
      }
    }
    assert.equal(current, "", "every command in the block is complete");
  }
  return commands;
}

/** Runs `check` on the command's output until it passes or `timeoutMs` ends (state that converges). */
async function eventually(command: () => Promise<string>, check: (out: string) => void, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = await command();
    try {
      check(out);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const json = (out: string): Record<string, unknown> => JSON.parse(out) as Record<string, unknown>;

/** What each README command must print, in the README's order; `converges` for state that lags a write. */
interface Expectation {
  command: RegExp;
  kind: "skip" | "stack" | "service" | "run";
  check?: (out: string) => void;
  converges?: boolean;
}

const EXPECTED: Expectation[] = [
  { command: /^npm ci\b/, kind: "skip" },
  { command: /^npm start\b/, kind: "stack" },
  {
    command: /\/v1\/runs -d '\{\n\s+"run": "my-run"/,
    kind: "run",
    check: (out) => assert.deepEqual([json(out).run, json(out).status], ["my-run", "running"]),
  },
  {
    command: /^curl -N \S+\/v1\/runs\/my-run\/events/,
    kind: "run",
    check: (out) => assert.match(out, /"type":"status","status":"completed"/),
  },
  {
    command: /^curl -s -H 'authorization: Bearer \S+' \S+\/v1\/runs\/my-run +#/,
    kind: "run",
    check: (out) => assert.deepEqual([json(out).status, json(out).version], ["completed", 7]),
  },
  {
    command: /^curl -s \S+\/v1\/runs\/my-run\/versions/,
    kind: "run",
    check: (out) => {
      assert.equal(json(out).current, 7);
      assert.equal((json(out).versions as unknown[]).length, 7);
    },
  },
  {
    command: /\/v1\/runs\/my-run\/rollback$/,
    kind: "run",
    check: (out) => assert.deepEqual(json(out), { run: "my-run", current: 3, revoked: [4, 5, 6, 7] }),
  },
  {
    command: /^curl -s \S+\/v1\/adapters/,
    kind: "run",
    converges: true,
    check: (out) =>
      assert.equal((json(out).active as Record<string, { version: number }>)["my-run"]?.version, 3),
  },
  {
    command: /\/v1\/completions [\s\S]*"model": "my-run"/,
    kind: "run",
    check: (out) => {
      assert.match(out, /^HTTP\/1\.1 200/);
      assert.match(out, /^x-loracast-adapter-version: 3\r?$/m);
      assert.match(out, /"model":"my-run@3"/);
    },
  },
  {
    command: /\/v1\/runs\/demo\/adapters$/,
    kind: "run",
    check: (out) => assert.deepEqual([json(out).run, json(out).version], ["demo", 1]),
  },
  {
    command: /^curl -s \S+\/v1\/models/,
    kind: "run",
    converges: true,
    check: (out) => {
      const ids = modelListSchema.parse(json(out)).data.map((m) => m.id);
      for (const id of ["demo-base", "demo", "demo@1", "my-run"])
        assert.ok(ids.includes(id), `${id} in ${ids}`);
    },
  },
  {
    command: /\/v1\/chat\/completions [\s\S]*"model": "demo"/,
    kind: "run",
    check: (out) => {
      assert.equal(json(out).model, "demo@1");
      assert.equal(chatCompletionSchema.parse(json(out)).choices[0]?.message.role, "assistant");
    },
  },
  {
    command: /^npm run build-model -- /,
    kind: "run",
    check: (out) => assert.match(out, /"fingerprint":"sha256:[0-9a-f]{64}"/),
  },
  // The trainer first: the generator's MANIFEST_PUBLIC_KEYS is read from the key file it makes.
  { command: /npm -w services\/trainer start$/, kind: "service" },
  { command: /^MANIFEST_PUBLIC_KEYS=\$\(cat [\s\S]*npm -w services\/generator start$/, kind: "service" },
  {
    command: /\/v1\/runs\/mine\/adapters$/,
    kind: "run",
    check: (out) => assert.deepEqual([json(out).run, json(out).version], ["mine", 1]),
  },
  {
    command: /\/v1\/chat\/completions [\s\S]*"model": "mine"/,
    kind: "run",
    converges: true,
    check: (out) => assert.equal(json(out).model, "mine@1"),
  },
];

describe("the README, verbatim, on a fresh data dir", () => {
  const data = mkdtempSync(join(tmpdir(), "loracast-readme-"));
  let stack: LocalStackRun | undefined;
  const services: ChildProcess[] = [];
  after(async () => {
    for (const s of services) {
      try {
        process.kill(-(s.pid as number), "SIGTERM");
      } catch {
        // already gone
      }
    }
    for (const s of services) assert.deepEqual(await waitGroupGone(s.pid as number), []);
    if (stack !== undefined) {
      await stack.interrupt().catch(() => stack?.killGroup());
      assert.deepEqual(await waitGroupGone(stack.pgid), []);
    }
    rmSync(data, { recursive: true, force: true });
  });

  it("every command works, in the order given", async () => {
    const base = await freePortRange(6);
    const ports: Record<string, number> = { 9000: base, 9001: base + 1, 9002: base + 2, 9003: base + 3 };
    Object.assign(ports, { 8700: base + 4, 8800: base + 5 });
    const rewrite = (command: string): string =>
      command
        .replace(/\b(9000|9001|9002|9003|8700|8800)\b/g, (p) => String(ports[p]))
        .replace(/(\$PWD\/)?\.data\b/g, data);

    const commands = readmeCommands();
    assert.deepEqual(
      commands.map((c) => EXPECTED.findIndex((e) => e.command.test(c))),
      EXPECTED.map((_, i) => i),
      `the README's commands, in order, are the ones this journey checks:\n${commands.join("\n---\n")}`,
    );
    for (const [i, command] of commands.entries()) {
      const e = EXPECTED[i] as Expectation;
      const shell = rewrite(command);
      if (e.kind === "skip") continue;
      if (e.kind === "stack") {
        stack = startLocalStack({
          LORACAST_DATA_DIR: data,
          LORACAST_BASE_PORT: String(base),
          LORACAST_DEMO_STEPS: "6",
        });
        await stack.waitForLine(/^Ctrl-C stops everything\.$/, 240_000);
        assert.match(stack.text(), /"model": "digits-1"/, "the demo's hint names its run");
        assert.match(stack.text(), /saved as PEFT +v\d+ in .*adapters\/digits-1$/m);
        continue;
      }
      if (e.kind === "service") {
        const proc = spawn("bash", ["-c", shell], {
          cwd: ROOT,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
        services.push(proc);
        const lines: string[] = [];
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`not ready in 120 s:\n${lines.join("\n")}`)),
            120_000,
          );
          proc.once("exit", (code) => reject(new Error(`exited ${code}:\n${lines.join("\n")}`)));
          for (const stream of [proc.stdout, proc.stderr]) {
            createInterface({ input: stream }).on("line", (l) => {
              lines.push(l);
              if (l.includes('"msg":"ready"')) {
                clearTimeout(timer);
                resolve();
              }
            });
          }
        });
        continue;
      }
      const exec = async (): Promise<string> => {
        const r = await run("bash", ["-c", shell], { cwd: ROOT, timeout: 180_000, maxBuffer: 64 << 20 });
        return r.stdout;
      };
      const checked = (out: string): void => {
        try {
          e.check?.(out);
        } catch (error) {
          throw new Error(`README command:\n${command}\nprinted:\n${out.slice(0, 2000)}`, { cause: error });
        }
      };
      if (e.converges === true) await eventually(exec, checked, 20_000);
      else checked(await exec());
    }
  });
});
