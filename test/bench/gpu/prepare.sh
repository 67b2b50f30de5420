#!/usr/bin/env bash
# Prepares what the GPU host needs to run `npm run bench:engine -- --ep=webgpu` and
# `npm run bench:train -- --ep=webgpu` (../shared/docs/gpu.md): .carry/ (node, linux-x64
# onnxruntime-node, each benchmark and the services it starts bundled into one file) and .gl/ (the
# Vulkan loader). Both are git-ignored; name them in the device call's `carry`.
# usage: prepare.sh [--cuda]   (--cuda: also .carry/cuda/, for cuda-stage.sh and cuda.sh; README.md)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .carry .gl
[ -s .carry/node.xz ] || xz -T2 -c "$(readlink -f "$(command -v node)")" > .carry/node.xz
cuda=0; [ "${1:-}" = "--cuda" ] && cuda=1
# Rebuilt when the installed onnxruntime-node is another version than the one packed: a CUDA
# provider loads only into the core library of its exact version. With --cuda, prepare-cuda.sh owns
# it (onnxruntime-node 1.29.0 from the registry, for every call), so it is packed once, there.
ort=$(node -p 'require("./node_modules/onnxruntime-node/package.json").version')
if [ "$cuda" = 0 ] && { [ ! -s .carry/ortnode.tar.xz ] || [ "$(cat .carry/ortnode.version 2>/dev/null)" != "$ort" ]; }; then
  tar cJf .carry/ortnode.tar.xz node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/dist \
    node_modules/onnxruntime-node/bin/napi-v6/linux/x64 node_modules/onnxruntime-common
  echo "$ort" > .carry/ortnode.version
fi
# The images' bundler: onnxruntime-node external, sharp (transformers.js, images only) stubbed.
bundle() { infra/images/esbuild.sh "$1" "$2"; }
bundle test/bench/engine/main.ts .carry/bench-engine.mjs
bundle test/bench/train/main.ts .carry/bench-train.mjs
# The training benchmark starts these as processes (LORACAST_SERVICE_BUNDLES=.carry).
bundle services/trainer/src/main.ts .carry/trainer.mjs
bundle services/s3-local/src/main.ts .carry/s3-local.mjs
# The Python trainer's handoff (python.sh) starts generators too.
bundle services/generator/src/main.ts .carry/generator.mjs
bundle test/bench/gpu/python-fleet.ts .carry/python-fleet.mjs
# The NVIDIA Vulkan ICD is libGLX_nvidia, which needs the glvnd libraries besides the loader.
if ! ls .gl/libglx0_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d); mkdir -p "$lists/partial"
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
# The batching check (batching-check.ts) runs on the llama-tiny fixture, fp32, with its adapter,
# with either attention (model: ops, model-gqa: GroupQueryAttention, model-gqa16: GroupQueryAttention
# over a float16 KV cache, the form ORT's CUDA kernel takes; model-gqa16-se: the same with one fused
# LoraShrinkExpand node per LoRA pair, --lora-op shrink-expand, which runs on the ort-native addon;
# model-gqa16-se-int4: the same on an int4 base, whose LoRA projections are one MatMulNBitsLora each;
# model-splitk-t: ops, WebGPU's LoRA form).
fixture=../shared/fixtures/peft-reference/llama-tiny
# Rebuilt when missing or built by an older builder (its manifest's schema is not this runtime's,
# or it lists no base graphs: "baseAppend", written with them).
current() { grep -qs '"loracast-model/2"' "$1" && grep -qs '"baseAppend"' "$1"; }
if ! current .carry/tiny/model/loracast-model.json; then
  rm -rf .carry/tiny
  npm run --silent build-model -- "$fixture/base" .carry/tiny/model --quant fp32 >/dev/null
  cp -r "$fixture/adapter" .carry/tiny/adapter
fi
current .carry/tiny/model-gqa/loracast-model.json ||
  npm run --silent build-model -- "$fixture/base" .carry/tiny/model-gqa --quant fp32 --attention gqa >/dev/null
{ current .carry/tiny/model-gqa16/loracast-model.json &&
  grep -qs '"kvCacheDtype": "float16"' .carry/tiny/model-gqa16/loracast-model.json; } ||
  npm run --silent build-model -- "$fixture/base" .carry/tiny/model-gqa16 --quant fp32 --attention gqa \
    --kv-cache-dtype float16 >/dev/null
{ current .carry/tiny/model-gqa16-se/loracast-model.json &&
  grep -qs '"loraOp": "shrink-expand"' .carry/tiny/model-gqa16-se/loracast-model.json; } ||
  npm run --silent build-model -- "$fixture/base" .carry/tiny/model-gqa16-se --quant fp32 --attention gqa \
    --kv-cache-dtype float16 --lora-op shrink-expand >/dev/null
{ current .carry/tiny/model-gqa16-se-int4/loracast-model.json &&
  grep -qs '"loraOp": "shrink-expand"' .carry/tiny/model-gqa16-se-int4/loracast-model.json; } ||
  npm run --silent build-model -- "$fixture/base" .carry/tiny/model-gqa16-se-int4 --quant int4 --attention gqa \
    --kv-cache-dtype float16 --lora-op shrink-expand >/dev/null
# model-splitk-t: the WebGPU build's LoRA form (shared/model-builder/lora-forms.ts).
{ current .carry/tiny/model-splitk-t/loracast-model.json &&
  grep -qs '"loraForm": "splitk-t"' .carry/tiny/model-splitk-t/loracast-model.json; } ||
  npm run --silent build-model -- "$fixture/base" .carry/tiny/model-splitk-t --quant fp32 --lora-form splitk-t >/dev/null
bundle test/bench/gpu/batching-check.ts .carry/batching-check.mjs
du -ch .carry/* .gl/* | tail -1
if [ "$cuda" = 1 ]; then bash test/bench/gpu/prepare-cuda.sh; fi
