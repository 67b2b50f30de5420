/**
 * Builds the `ort-native` addon from the npm registry alone, without node-gyp (which downloads
 * Node's headers from nodejs.org): N-API headers from the dev dependency `node-api-headers`, ORT
 * 1.29.0's C API headers from the npm package `com.github.asus4.onnxruntime@0.4.9` (150 MB, so not
 * a dependency: fetched with `npm pack`, its integrity checked, only `Headers/*.h` kept in a
 * git-ignored cache), compiled by `g++`. The addon does not link against `libonnxruntime.so.1`: it
 * loads the one onnxruntime-node ships at run time (`loadOrtNative`), so one build runs on ORT 1.29
 * (the CUDA path) and 1.30 (the project's) alike.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { err, ok, type Result } from "../result/index.ts";
import { LORA_KERNELS_PTX } from "./lora-ptx.ts";

const root = join(import.meta.dirname, "..", "..");
/** The npm package with ORT 1.29.0's headers (../shared/docs/gpu.md), and the registry's integrity. */
const HEADERS_PACKAGE = "com.github.asus4.onnxruntime@0.4.9";
const HEADERS_INTEGRITY =
  "sha512-BkzxduSZ9IkeDP6Q8lz2TFU2ie7hSSvS7ZIfzMooExoq0CNzJnuuGaUJ7IsojBgqO4ouD1jXah8OYyJbCN29Fg==";
const HEADERS_IN_PACKAGE =
  "package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers";
const HEADERS_CACHE = join(root, "node_modules", ".cache", "ort-native", "headers-0.4.9");
const ORT_LIB_DIR = join(root, "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", "x64");
/** The translation units, then what they include (all of them decide whether to rebuild). */
const UNITS = ["addon.cc", "lora-op.cc", "nbits-op.cc", "lora-cuda.cc", "cuda-driver.cc"].map((f) =>
  join(import.meta.dirname, f),
);
const SOURCES = [
  ...UNITS,
  ...[
    "support.h",
    "run-thread.h",
    "lora-op.h",
    "nbits-op.h",
    "op-support.h",
    "lora-cuda.h",
    "cuda-driver.h",
    "cuda-scope.h",
    "lora-kernels.h",
    "lora-kernels.ptx",
  ].map((f) => join(import.meta.dirname, f)),
];
/** Ends the raw string literal that carries the PTX into the addon (`loraPtxHeader`). */
const PTX_DELIMITER = "lora_ptx";

/** Why `buildOrtNative` built nothing. */
export interface OrtNativeBuildFailure {
  /** `no-compiler`: no `g++` on PATH; `no-ort`: onnxruntime-node's Linux x64 library is absent. */
  reason: "no-compiler" | "no-ort" | "headers" | "compile";
  message: string;
}

function run(cmd: string, args: readonly string[], cwd?: string): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return {
    ok: r.status === 0,
    out: `${r.error?.message ?? ""}${r.stdout ?? ""}${r.stderr ?? ""}`.slice(-4000),
  };
}

/** Fetches the ORT headers into `HEADERS_CACHE` once (written to a temp folder, then renamed). */
function ortHeaders(): Result<string, OrtNativeBuildFailure> {
  if (existsSync(join(HEADERS_CACHE, "onnxruntime_c_api.h"))) return ok(HEADERS_CACHE);
  const tmp = mkdtempSync(join(tmpdir(), "ort-native-"));
  try {
    const pack = run("npm", ["pack", HEADERS_PACKAGE, "--silent", "--pack-destination", tmp]);
    const tgz = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    if (!pack.ok || !tgz)
      return err({ reason: "headers", message: `npm pack ${HEADERS_PACKAGE}: ${pack.out}` });
    const got = `sha512-${createHash("sha512")
      .update(readFileSync(join(tmp, tgz)))
      .digest("base64")}`;
    if (got !== HEADERS_INTEGRITY)
      return err({
        reason: "headers",
        message: `${HEADERS_PACKAGE}: integrity ${got}, expected ${HEADERS_INTEGRITY}`,
      });
    const strip = HEADERS_IN_PACKAGE.split("/").length;
    const out = join(tmp, "headers");
    mkdirSync(out);
    const untar = run("tar", [
      "xzf",
      join(tmp, tgz),
      "--no-same-owner",
      "-C",
      out,
      `--strip-components=${strip}`,
      "--wildcards",
      `${HEADERS_IN_PACKAGE}/*.h`,
    ]);
    if (!untar.ok) return err({ reason: "headers", message: `extracting the headers: ${untar.out}` });
    mkdirSync(dirname(HEADERS_CACHE), { recursive: true });
    rmSync(HEADERS_CACHE, { recursive: true, force: true });
    renameSync(out, HEADERS_CACHE);
    return ok(HEADERS_CACHE);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Builds the addon into `out` (a `.node` file; its folder is made) unless it is newer than its
 * sources. Returns the path, or why it could not build (`no-ort` where onnxruntime-node ships no
 * Linux x64 `libonnxruntime.so.1`, the library the addon would run on). Takes ~10 s to compile,
 * plus ~15 s to fetch the headers the first time on this machine.
 */
export function buildOrtNative(out: string): Result<string, OrtNativeBuildFailure> {
  const lib = join(ORT_LIB_DIR, "libonnxruntime.so.1");
  if (!existsSync(lib))
    return err({ reason: "no-ort", message: `${lib} is missing (onnxruntime-node, linux x64)` });
  if (!run("g++", ["--version"]).ok)
    return err({ reason: "no-compiler", message: "g++ is not on PATH (Debian/Ubuntu: apt-get install g++)" });
  const newest = Math.max(...SOURCES.map((f) => statSync(f).mtimeMs));
  if (existsSync(out) && statSync(out).mtimeMs > newest) return ok(out);
  const headers = ortHeaders();
  if (!headers.ok) return headers;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  // lora-cuda.cc includes the PTX as a raw string literal from a header generated here.
  const ptx = readFileSync(LORA_KERNELS_PTX, "utf8");
  if (ptx.includes(`)${PTX_DELIMITER}"`))
    return err({ reason: "compile", message: `lora-kernels.ptx contains the delimiter )${PTX_DELIMITER}"` });
  const generated = mkdtempSync(join(tmpdir(), "ort-native-gen-"));
  writeFileSync(
    join(generated, "lora-ptx.h"),
    `// Generated by shared/ort-native/build.ts from lora-kernels.ptx.\n#pragma once\nstatic const char LORA_PTX[] = R"${PTX_DELIMITER}(${ptx})${PTX_DELIMITER}";\n`,
  );
  const napiHeaders = join(root, "node_modules", "node-api-headers", "include");
  const compile = run("g++", [
    "-O2",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    `-I${napiHeaders}`,
    `-I${headers.value}`,
    `-I${generated}`,
    ...UNITS,
    "-o",
    tmp,
    "-ldl",
  ]);
  rmSync(generated, { recursive: true, force: true });
  if (!compile.ok) {
    rmSync(tmp, { force: true });
    return err({ reason: "compile", message: compile.out });
  }
  renameSync(tmp, out);
  return ok(out);
}
