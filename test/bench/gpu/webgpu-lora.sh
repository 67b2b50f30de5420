#!/usr/bin/env bash
# One device call on the GPU host (README.md, "LoRA graph forms on WebGPU"): the LoRA-pair probe
# (webgpu-lora-probe.ts) on the WebGPU EP. Carries .carry/node.xz, .carry/ortnode.tar.xz (1.29.0
# after prepare.sh --cuda, the version the session-16 WebGPU rows ran), the probe's bundle
# .carry/cuda/webgpu-lora-probe.mjs and .gl. About a minute: every form at batch 1, 8 and 1024 (a
# prefill's tokens), then the split-K forms at their other chunks. Flags given here go to the first
# run. Logs in $OUT.
set -uo pipefail
start=$SECONDS
source test/bench/gpu/setup.sh
probe=.carry/cuda/webgpu-lora-probe.mjs
timeout -k 5 150 node "$probe" --ep=webgpu "$@" 2>&1 | tee "$OUT/webgpu-lora-probe.txt"
for chunk in 32 128; do
  timeout -k 5 60 node "$probe" --ep=webgpu --variants=identity,gemm,splitk,splitk-t --chunk=$chunk 2>&1 |
    tee "$OUT/webgpu-lora-probe-chunk$chunk.txt"
done
echo "call took $((SECONDS - start)) s"
