#!/usr/bin/env bash
# Writes the images' build context, infra/dist (git-ignored): each service bundled into one file
# (app/trainer.mjs, app/generator.mjs, app/s3-local.mjs) plus the demo model's builder
# (app/build-demo-model.mjs) and the trainer dashboard's static files (app/static), and the packages
# the bundles resolve at run time (node_modules: onnxruntime-node's linux-x64 binaries and JS with
# onnxruntime-common, and uPlot's browser build, which the dashboard serves as a file), and loracast's
# ORT addon (native/ort-native.node, shared/ort-native: the decoder's binding on cuda). The Dockerfiles
# copy from here, so an image needs no npm install and no workspace manifest. Run from anywhere after
# `npm ci`, on Linux x64 with g++ for the addon.
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
out=infra/dist
rm -rf "$out" && mkdir -p "$out/app" "$out/node_modules"
bundle() { infra/images/esbuild.sh "$1" "$out/app/$2"; }
bundle services/trainer/src/main.ts trainer.mjs
bundle services/generator/src/main.ts generator.mjs
bundle services/s3-local/src/main.ts s3-local.mjs
bundle test/support/models/build-demo-main.ts build-demo-model.mjs
ort=node_modules/onnxruntime-node
mkdir -p "$out/$ort/bin/napi-v6/linux"
cp -r "$ort/package.json" "$ort/dist" "$out/$ort/"
cp -r "$ort/bin/napi-v6/linux/x64" "$out/$ort/bin/napi-v6/linux/"
cp -r node_modules/onnxruntime-common "$out/node_modules/"
# The dashboard (services/trainer/src/dashboard/assets.ts) reads its files beside the bundle
# (import.meta.dirname/static) and uPlot's through require.resolve.
cp -r services/trainer/src/dashboard/static "$out/app/static"
uplot=$(dirname "$(node -p 'require.resolve("uplot/package.json", { paths: ["services/trainer"] })')")
mkdir -p "$out/node_modules/uplot/dist"
cp "$uplot/package.json" "$out/node_modules/uplot/"
cp "$uplot"/dist/uPlot.iife.min.js "$uplot"/dist/uPlot.min.css "$out/node_modules/uplot/dist/"
# The ORT addon, built with g++ (shared/ort-native/build.ts; reused where shared/ort-native/build holds
# an up-to-date one, as after its test). It loads onnxruntime-node's own libonnxruntime.so.1 at run
# time, so this one build serves the cpu and webgpu images (ORT 1.30) and the cuda image (1.29.0).
# Without g++, or off Linux x64, the images go without it and say so: on cuda the decoder then runs
# the stock binding (`ort-native not-built` in the start-up log and /metrics), and a service on
# *_ORT_BACKEND=ort-native exits 2.
mkdir -p "$out/native"
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "bundle: ort-native SKIPPED: the images are linux x64 and this is $(uname -sm); they run the stock binding"
elif node --import tsx shared/ort-native/build-main.ts; then
  cp shared/ort-native/build/ort-native.node "$out/native/"
else
  echo "bundle: ort-native SKIPPED (the reason is above; CI and Debian: apt-get install g++): the images run the stock binding"
fi
# The execution provider step the Dockerfiles run.
mkdir -p "$out/images" && cp infra/images/execution-provider.sh infra/images/cuda-provider.env "$out/images/"
du -sh "$out/app" "$out/node_modules" "$out/native" | sed 's/^/bundle: /'
