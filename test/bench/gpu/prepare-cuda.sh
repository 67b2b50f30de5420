#!/usr/bin/env bash
# Prepares, git-ignored, what the second CUDA device call (cuda.sh or train.sh) carries beside .gl/:
# .carry/cuda-ep/: the CUDA 13 provider of ORT 1.29.0 (../shared/docs/gpu.md) cut to sm_90 and
#   xz'ed, and the provider bridge library (cuda-ep.sh installs them on the GPU host);
# .carry/cuda/: the bundles of the conformance harness, the batching check, the engine bench, the
#   ort-native probe, the CUDA-graph probe and the fused LoRA ops' checks, the ORT addon
#   (shared/ort-native), the llama-tiny model for the batching check and the two PEFT reference
#   fixtures.
# Run by `prepare.sh --cuda` after the rest of .carry/ is made. Reuses the provider once made.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
. infra/images/cuda-provider.env
pkg=$CUDA_PROVIDER_PKG integrity=$CUDA_PROVIDER_INTEGRITY
# The provider must match libonnxruntime.so.1's exact version: the CUDA calls carry onnxruntime-node
# 1.29.0 from the registry (what the provider was built for), whatever version the project installs
# (1.30: 1.29's CPU kernels broke batched = alone for sampled streams, test/integration/swap-under-load).
cuda_ort=1.29.0
if [ "$(cat .carry/ortnode.version 2>/dev/null)" != "$cuda_ort" ]; then
  otmp=$(mktemp -d)
  for p in onnxruntime-node onnxruntime-common; do
    npm pack "$p@$cuda_ort" --pack-destination "$otmp" --silent > /dev/null
    mkdir -p "$otmp/node_modules/$p" && tar xzf "$otmp/$p-$cuda_ort.tgz" -C "$otmp/node_modules/$p" --strip-components=1
  done
  tar cJf .carry/ortnode.tar.xz -C "$otmp" node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/dist \
    node_modules/onnxruntime-node/bin/napi-v6/linux/x64 node_modules/onnxruntime-common
  echo "$cuda_ort" > .carry/ortnode.version
  rm -rf "$otmp"
fi
ep=.carry/cuda-ep out=.carry/cuda
# .carry/cuda is remade whole each time: nothing stale may ride along in call B.
rm -rf "$out" && mkdir -p "$ep" "$out"
# Remade when the pinned package changes; written to temp files first, so an interrupted run leaves none.
if [ "$(cat "$ep/package" 2>/dev/null)" != "$pkg" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  got=$(npm pack "$pkg" --pack-destination "$tmp" --json --silent | node -p 'JSON.parse(require("fs").readFileSync(0))[0].integrity')
  [ "$got" = "$integrity" ] || { echo "$pkg: integrity $got, expected $integrity" >&2; exit 1; }
  tar xzf "$tmp"/*.tgz --no-same-owner -C "$tmp" package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so \
    package/Plugins/Linux/x64/libonnxruntime_providers_shared.so
  lib=$tmp/package/Plugins/Linux/x64
  # 230 MB of cubins for six architectures; the H200 is sm_90, and zeroed cubins compress to nothing.
  python3 ../shared/tools/cuda-fatbin-keep-arch.py "$lib/libonnxruntime_providers_cuda.so" "$tmp/sm90.so" 90
  xz -T2 -c "$tmp/sm90.so" > "$tmp/providers_cuda.so.xz"
  rm -rf "$ep" && mkdir -p "$ep"
  mv "$tmp/providers_cuda.so.xz" "$lib/libonnxruntime_providers_shared.so" "$ep/"
  echo "$pkg" > "$ep/package"
fi
bundle() { infra/images/esbuild.sh "$1" "$2"; }
bundle test/conformance/main.ts "$out/conformance.mjs"
bundle test/bench/engine/main.ts "$out/bench-engine.mjs"
bundle test/bench/gpu/batching-check.ts "$out/batching-check.mjs"
bundle test/bench/gpu/ort-native-probe.ts "$out/ort-native-probe.mjs"
bundle test/bench/gpu/cuda-graph-probe.ts "$out/cuda-graph-probe.mjs"
# The LoRA-pair probe on WebGPU (webgpu-lora.sh, one call of its own).
bundle test/bench/gpu/webgpu-lora-probe.ts "$out/webgpu-lora-probe.mjs"
bundle test/bench/gpu/lora-op-check.ts "$out/lora-op-check.mjs"
bundle test/bench/gpu/nbits-op-check.ts "$out/nbits-op-check.mjs"
# The ORT addon (shared/ort-native) for the decoders (LORACAST_ORT_NATIVE_ADDON in cuda.sh) and the
# probe: not linked against libonnxruntime.so.1, it loads onnxruntime-node's own at run time (1.29.0
# there; an addon linked against the project's 1.30 would not load). Without g++ it is missing.
node --import tsx shared/ort-native/build-main.ts --out="$out/ort-native.node" || true
cp -r .carry/tiny "$out/tiny"
mkdir -p "$out/fixtures"
cp -r ../shared/fixtures/peft-reference/llama-tiny ../shared/fixtures/peft-reference/qwen2-tiny "$out/fixtures/"
# Each device call carries at most 64 MiB with the tracked files (~5 MB).
echo "call A (cuda-stage.sh) carries:"; du -ch .carry/node.xz .carry/ortnode.tar.xz | tail -1
echo "call B (cuda.sh) carries:"; du -ch "$ep" "$out" .gl | tail -1
echo "webgpu-lora.sh carries:"; du -ch .carry/node.xz .carry/ortnode.tar.xz "$out/webgpu-lora-probe.mjs" .gl | tail -1
echo "call B (train.sh) carries:"; du -ch "$ep" .carry/{bench-train,trainer,s3-local}.mjs .gl | tail -1
