/**
 * Issue 20: every CLI and service entry point answers `--help` (exit 0, a usage naming every flag
 * and every environment variable its env schema reads) and refuses an unknown flag with exit 2.
 * Each runs as a real process, as `npm run …` or `node --import tsx …` runs it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ROOT } from "@loracast/dev-support/fixtures";
import { supervisorEnvSchema } from "@loracast/dev-support/supervisor";
import type { z } from "zod";
import { generatorEnvSchema } from "../../services/generator/src/env.ts";
import { envSchema as localStackEnv } from "../../services/local-stack/src/env.ts";
import { envSchema as s3LocalEnv } from "../../services/s3-local/src/env.ts";
import { envSchema as trainerEnv } from "../../services/trainer/src/env.ts";
import { runProcess } from "../helpers/run-process.ts";

interface Entry {
  name: string;
  command: string[];
  /** The flags its usage must name, besides --help. */
  flags: string[];
  /** The env schema whose every variable its usage must name; none for an entry that reads none. */
  env?: z.ZodObject;
}

const tsx = (file: string) => [process.execPath, "--import", "tsx", file];

const ENTRIES: Entry[] = [
  { name: "trainer", command: tsx("services/trainer/src/main.ts"), flags: [], env: trainerEnv },
  { name: "generator", command: tsx("services/generator/src/main.ts"), flags: [], env: generatorEnvSchema },
  { name: "s3-local", command: tsx("services/s3-local/src/main.ts"), flags: [], env: s3LocalEnv },
  { name: "npm start", command: tsx("services/local-stack/src/main.ts"), flags: [], env: localStackEnv },
  {
    name: "npm run build-model",
    command: ["npm", "run", "--silent", "build-model", "--"],
    flags: [
      "quant",
      "block-size",
      "accuracy-level",
      "merge",
      "format",
      "attention",
      "kv-cache-dtype",
      "lora-form",
      "lora-op",
    ],
  },
  {
    name: "npm run conformance",
    command: tsx("test/conformance/main.ts"),
    flags: ["quant", "block-size", "attention", "kv-cache-dtype", "lora-form", "lora-op"],
  },
  {
    name: "npm run bench:engine",
    command: tsx("test/bench/engine/main.ts"),
    flags: [
      "accuracy-level",
      "block-size",
      "ep",
      "rounds",
      "swaps",
      "throughput",
      "attention",
      "kv-cache-dtype",
      "lora-op",
      "work",
    ],
  },
  {
    name: "npm run bench:fleet",
    command: tsx("test/bench/fleet/main.ts"),
    flags: ["n", "versions", "mb", "kill", "kill-at", "kill-versions", "reconcile-ms"],
    env: supervisorEnvSchema,
  },
  {
    name: "npm run bench:handoff",
    command: tsx("test/bench/handoff/main.ts"),
    flags: ["generators", "sizes", "publishes", "rss-publishes"],
    env: supervisorEnvSchema,
  },
  {
    name: "npm run bench:train",
    command: tsx("test/bench/train/main.ts"),
    flags: [
      "ep",
      "steps",
      "prompts",
      "generations",
      "prompt-tokens",
      "max-tokens",
      "threads",
      "micro-batch",
      "build-only",
      "work",
    ],
    env: supervisorEnvSchema,
  },
  // The GPU probes run on the GPU host (bundled); their command lines are checked here.
  {
    name: "cuda-graph-probe",
    command: tsx("test/bench/gpu/cuda-graph-probe.ts"),
    flags: ["model", "addon", "steps", "past", "batch", "also"],
  },
  {
    name: "lora-op-check",
    command: tsx("test/bench/gpu/lora-op-check.ts"),
    flags: ["addon", "nodes", "runs", "ep", "ms"],
  },
  {
    name: "ort-native-probe",
    command: tsx("test/bench/gpu/ort-native-probe.ts"),
    flags: ["model", "addon", "ep", "steps", "prompt", "rank"],
  },
];

/** Runs an entry point with no inherited configuration: it must answer --help before it reads (or misses) any. */
const run = (command: string[], args: string[]) => {
  const [bin, ...rest] = command as [string, ...string[]];
  return runProcess(bin, [...rest, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root" },
  });
};

describe("--help on every entry point", () => {
  for (const e of ENTRIES) {
    it(`${e.name}: --help exits 0 naming every flag and environment variable; an unknown flag exits 2`, async () => {
      const help = await run(e.command, ["--help"]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^usage: /m);
      for (const flag of [...e.flags, "help"])
        assert.match(help.stdout, new RegExp(`--${flag}\\b`), `${e.name} --help names --${flag}`);
      for (const name of Object.keys(e.env?.shape ?? {}))
        assert.match(help.stdout, new RegExp(`^  ${name} `, "m"), `${e.name} --help names ${name}`);

      const bad = await run(e.command, ["--no-such-flag"]);
      assert.equal(bad.code, 2, bad.stdout + bad.stderr);
      assert.match(bad.stderr, /^error: Unknown option '--no-such-flag'/m);
      assert.match(bad.stderr, /^usage: /m);
    });
  }
});
