#!/usr/bin/env bash
# Runs on the GPU host (device call): our engine through the WebGPU EP, and HF transformers + PEFT on
# the same checkpoint in the same call. Results go to $OUT. Prepare with test/bench/gpu/prepare.sh.
set -uo pipefail
source test/bench/gpu/setup.sh
# Build the checkpoint and artifacts first (no timing; in webgpu's LoRA form, splitk-t), then the peer,
# then ours: the peer's figures must not depend on how long ours take.
node .carry/bench-engine.mjs --work="$work" --throughput=false --swaps=0 --lora-form=splitk-t | tee "$OUT/build.txt"
python3 test/bench/gpu/hf-peft-peer.py "$work/qwen25-05b-random" bfloat16 2>&1 | grep -v Warning | tee "$OUT/hf-peft.txt"
node --expose-gc .carry/bench-engine.mjs --work="$work" --ep=webgpu "$@" 2>&1 | tee "$OUT/loracast-webgpu.txt"
