#!/usr/bin/env bash
# Runs on the GPU host (device call): our engine through the WebGPU EP, and HF transformers + PEFT on
# the same checkpoint in the same call. Results go to $OUT. Prepare with test/bench/gpu/prepare.sh.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/n && xz -dc .carry/node.xz > /tmp/n/node && chmod +x /tmp/n/node && export PATH=/tmp/n:$PATH
tar xJf .carry/ortnode.tar.xz
work=/tmp/bench-work; mkdir -p "$work" "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
# Build the checkpoint and artifacts first (no timing), then the peer, then ours: the peer's figures
# must not depend on how long ours take.
node .carry/bench-engine.mjs --work="$work" --throughput=false --swaps=0 | tee "$OUT/build.txt"
python3 test/bench/gpu/hf-peft-peer.py "$work/qwen25-05b-random" bfloat16 2>&1 | grep -v Warning | tee "$OUT/hf-peft.txt"
node --expose-gc .carry/bench-engine.mjs --work="$work" --ep=webgpu "$@" 2>&1 | tee "$OUT/loracast-webgpu.txt"
