#!/usr/bin/env bash
# Writes the images' build context, infra/dist (git-ignored): each service bundled into one file
# (app/trainer.mjs, app/generator.mjs, app/s3-local.mjs) plus the demo model's builder
# (app/build-demo-model.mjs), and onnxruntime-node's runtime files (ort/node_modules: the linux-x64
# binaries, its JS and onnxruntime-common, and its install script bundled as script/install.cjs for
# the CUDA step). The Dockerfiles copy from here, so an image needs no npm install and no workspace
# manifest. Run from anywhere after `npm ci`.
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
out=infra/dist
rm -rf "$out" && mkdir -p "$out/app" "$out/ort/node_modules"
bundle() { infra/images/esbuild.sh "$1" "$out/app/$2"; }
bundle services/trainer/src/main.ts trainer.mjs
bundle services/generator/src/main.ts generator.mjs
bundle services/s3-local/src/main.ts s3-local.mjs
bundle test/support/models/build-demo-main.ts build-demo-model.mjs
ort=node_modules/onnxruntime-node
mkdir -p "$out/ort/$ort/bin/napi-v6/linux" "$out/ort/$ort/script"
cp -r "$ort/package.json" "$ort/dist" "$out/ort/$ort/"
cp -r "$ort/bin/napi-v6/linux/x64" "$out/ort/$ort/bin/napi-v6/linux/"
cp -r node_modules/onnxruntime-common "$out/ort/node_modules/"
# The install script resolves the binaries' folder from its own (script/../bin), so it stays there.
npx esbuild "$ort/script/install.js" --bundle --platform=node --format=cjs --target=node20 \
  --outfile="$out/ort/$ort/script/install.cjs" --log-level=warning
# The execution provider step the Dockerfiles run.
mkdir -p "$out/images" && cp infra/images/execution-provider.sh "$out/images/"
du -sh "$out/app" "$out/ort" | sed 's/^/bundle: /'
