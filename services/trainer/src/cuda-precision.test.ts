import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { cudaPrecision } from "./cuda-precision.ts";
import { envSchema } from "./env.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
// Everything else valid, so that only the variable under test can stop the start.
const VALID = {
  PATH: process.env.PATH,
  S3_ACCESS_KEY_ID: "test",
  S3_SECRET_ACCESS_KEY: "test",
  S3_BUCKET: "loracast-test",
  TRAINER_API_TOKEN: "a-token-of-16-characters",
  WEBHOOK_SECRET: `whsec_${Buffer.from("loracast-test-webhook-secret-32b").toString("base64")}`,
};

/** Starts the trainer with `env` and returns how it exited: it must stop before reaching the store. */
function start(env: Record<string, string | undefined>) {
  const r = spawnSync(process.execPath, ["--import", "tsx", MAIN], {
    env: { ...VALID, S3_STARTUP_TIMEOUT_S: "0", ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The `problem` of the log line that names TRAINER_CUDA_TF32 as an invalid configuration, or "". */
function problem(output: string): string {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const l = JSON.parse(line) as { msg?: string; variable?: string; problem?: string };
    if (l.msg === "invalid configuration" && l.variable === "TRAINER_CUDA_TF32") return l.problem ?? "";
  }
  return "";
}

describe("TRAINER_CUDA_TF32", () => {
  it("defaults to off and accepts only off or on", () => {
    assert.equal(envSchema.parse(VALID).TRAINER_CUDA_TF32, "off");
    assert.equal(envSchema.parse({ ...VALID, TRAINER_CUDA_TF32: "on" }).TRAINER_CUDA_TF32, "on");
    assert.equal(envSchema.safeParse({ ...VALID, TRAINER_CUDA_TF32: "false" }).success, false);
  });

  it("on cuda, off passes cudaTf32: false to the decoder and turns TF32 off for the process", () => {
    for (const override of [undefined, "0"])
      assert.deepEqual(cudaPrecision("off", "cuda", override), {
        ok: true,
        value: { tf32: "off", decoder: { cudaTf32: false }, overrideTf32Off: true },
      });
    assert.deepEqual(cudaPrecision("on", "cuda", undefined), {
      ok: true,
      value: { tf32: "on", decoder: { cudaTf32: true }, overrideTf32Off: false },
    });
  });

  it("refuses an NVIDIA_TF32_OVERRIDE that contradicts it", () => {
    const on = cudaPrecision("on", "cuda", "0");
    assert.equal(on.ok, false);
    assert.match(on.ok ? "" : on.error, /TRAINER_CUDA_TF32=on, but NVIDIA_TF32_OVERRIDE=0/);
    const off = cudaPrecision("off", "cuda", "1");
    assert.equal(off.ok, false);
    assert.match(off.ok ? "" : off.error, /NVIDIA_TF32_OVERRIDE=0 .* set to "1"/);
  });

  it("gives cpu and webgpu sessions no CUDA option and leaves the process environment alone", () => {
    // DecoderSession.load throws a RangeError for cudaTf32 off cuda: the decoder options stay empty.
    for (const ep of ["cpu", "webgpu"] as const)
      for (const setting of ["off", "on"] as const)
        assert.deepEqual(cudaPrecision(setting, ep, "0"), {
          ok: true,
          value: { tf32: "not_applicable", decoder: {}, overrideTf32Off: false },
        });
  });

  it("stops the trainer with exit 2 and the variable named on a bad value or a conflict", () => {
    const bad = start({ TRAINER_CUDA_TF32: "yes" });
    assert.equal(bad.code, 2, bad.output);
    assert.match(problem(bad.output), /expected one of "off"\|"on"/);
    const conflict = start({
      TRAINER_CUDA_TF32: "on",
      TRAINER_EXECUTION_PROVIDER: "cuda",
      NVIDIA_TF32_OVERRIDE: "0",
    });
    assert.equal(conflict.code, 2, conflict.output);
    assert.match(problem(conflict.output), /TRAINER_CUDA_TF32=on, but NVIDIA_TF32_OVERRIDE=0/);
  });
});
