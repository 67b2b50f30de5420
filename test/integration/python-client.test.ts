/**
 * Issue 19: the Python client (`shared/python/loracast`, standard library only) on real processes.
 * The stack is the embedded S3 server, the trainer (verifying uploads against llama-tiny) and two
 * generators serving llama-tiny: `g0` hears the trainer's webhooks, `g1` learns by reconcile only.
 * `python3 -m unittest` runs the client's whole suite against it (URLs and token in the
 * environment) and must run every test, none skipped; and the client's safetensors writer must write
 * byte for byte what the TypeScript codec writes for the same tensors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fixture, LLAMA_CONFIG, ROOT } from "@loracast/dev-support/fixtures";
import type { Service } from "@loracast/dev-support/supervisor";
import { encodeSafetensors } from "@loracast/shared/safetensors";
import { runProcess } from "../helpers/run-process.ts";
import { type Stack, startServingStack, TOKEN } from "../helpers/stack.ts";

const PYTHON_ROOT = join(ROOT, "shared", "python");
/** Every test of shared/python/tests: unit and live. A test added there must be counted here. */
const EXPECTED_TESTS = 37;

/** Runs python3 in the repository root; never writes bytecode into the tree. */
const python = (args: string[], env: Record<string, string> = {}) =>
  runProcess("python3", args, {
    cwd: ROOT,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PYTHONPATH: PYTHON_ROOT, ...env },
  });

describe("the Python client against a real trainer and generators", () => {
  let stack: Stack;
  const generators: Service[] = [];

  before(async () => {
    const serving = await startServingStack();
    stack = serving.stack;
    generators.push(serving.generator, await stack.startGenerator("g1"));
  });
  after(async () => {
    // g1 was started after the stack, so the stack's stop does not know it.
    await generators[1]?.stop();
    await stack?.stop();
  });

  it("passes its unittest suite: every test runs, none is skipped", async (t) => {
    const r = await python(
      ["-m", "unittest", "discover", "-v", "-s", "shared/python/tests", "-t", "shared/python"],
      {
        LORACAST_TRAINER_URL: stack.trainer.url,
        LORACAST_TOKEN: TOKEN,
        LORACAST_GENERATOR_URLS: generators.map((g) => g.url).join(","),
        LORACAST_BASE_CONFIG: LLAMA_CONFIG,
        LORACAST_PEFT_DIR: join(fixture("llama-tiny"), "adapter"),
        LORACAST_OTHER_BASE_PEFT_DIR: join(fixture("qwen2-tiny"), "adapter"),
      },
    );
    for (const line of r.output.trimEnd().split("\n")) t.diagnostic(line);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`^Ran ${EXPECTED_TESTS} tests in `, "m"), r.output);
    assert.match(r.output, /^OK$/m, r.output);
    assert.doesNotMatch(r.output, /skipped/, r.output);
  });

  it("compiles every Python file with warnings as errors (CI has no Python linter)", async () => {
    // compile() rather than py_compile: nothing is written into the tree.
    const script = [
      "import pathlib, sys",
      "files = sorted(pathlib.Path('shared/python').rglob('*.py'))",
      "for f in files: compile(f.read_text(encoding='utf-8'), str(f), 'exec')",
      "print(len(files))",
    ].join("\n");
    const r = await python(["-W", "error", "-c", script]);
    assert.equal(r.code, 0, r.output);
    assert.ok(Number(r.output) >= 17, r.output);
  });

  it("writes safetensors byte for byte as the TypeScript codec does", async () => {
    // F32, F16 and BF16 under names that sort differently by dtype and by name, and metadata.
    const f32 = new Float32Array([1.5, -2, 0.25, 3, 0, -0.125]);
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3800]);
    const bf16 = new Uint16Array([0x3fc0, 0xbf80]);
    const ts = encodeSafetensors(
      {
        "z.lora_A.weight": { dtype: "F32", shape: [2, 3], data: f32 },
        "a.lora_B.weight": { dtype: "F16", shape: [3, 1], data: f16 },
        "m.lora_A.weight": { dtype: "BF16", shape: [1, 2], data: bf16 },
      },
      { format: "pt" },
    );
    const hex = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");
    const script = [
      "import sys",
      "from loracast import Tensor, encode_safetensors",
      "t = {",
      `  'z.lora_A.weight': Tensor('F32', (2, 3), bytes.fromhex('${hex(f32)}')),`,
      `  'a.lora_B.weight': ('F16', [3, 1], bytes.fromhex('${hex(f16)}')),`,
      `  'm.lora_A.weight': Tensor('BF16', (1, 2), bytes.fromhex('${hex(bf16)}')),`,
      "}",
      "sys.stdout.write(encode_safetensors(t, {'format': 'pt'}).hex())",
    ].join("\n");
    const r = await python(["-c", script]);
    assert.equal(r.code, 0, r.output);
    assert.equal(r.output, hex(ts));
  });
});
