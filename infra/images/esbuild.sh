#!/usr/bin/env bash
# esbuild.sh <entry.ts> <out.mjs>: bundles a service or tool (TypeScript, the workspace packages and
# their dependencies) into one ESM file that plain `node` runs. onnxruntime-node stays outside (native
# binaries; it is resolved from a node_modules beside the bundle), and sharp, which transformers.js
# imports for images only, becomes a stub that throws. Used by bundle.sh (the images) and
# test/bench/gpu/prepare.sh (the GPU host). Run from the repository root after `npm ci`.
set -euo pipefail
stub=$(mktemp -d)/sharp.mjs
trap 'rm -rf "$(dirname "$stub")"' EXIT
echo 'export default function sharp() { throw new Error("sharp is not bundled"); }' >"$stub"
npx esbuild "$1" --bundle --platform=node --format=esm --target=node20 --outfile="$2" \
  --external:onnxruntime-node --external:onnxruntime-common --alias:sharp="$stub" --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
