#!/usr/bin/env bash
# Runs on the GPU host (device call): PyTorch + PEFT training the same model and LoRA (bf16, then
# QLoRA nf4 where bitsandbytes is installed), then our trainer through the CUDA EP (when the call
# carries .carry/cuda-ep: README.md, "CUDA on the GPU host") and the WebGPU EP, same shapes.
# Results go to $OUT. Prepare with test/bench/gpu/prepare.sh (--cuda for the CUDA rows).
# usage: train.sh [steps prompts generations prompt-tokens max-tokens]
set -uo pipefail
source test/bench/gpu/setup.sh
source test/bench/gpu/cuda-ep.sh
# The trainer's rollout decoder runs on the ort-native addon on cuda when it finds it (carry
# .carry/cuda/ort-native.node; prepare-cuda.sh builds it), else on the stock binding: the bench's
# "rollout decoder:" line says which. The supervisor passes the trainer only the environment it
# is given, so the path goes as bench:train's --addon (LORACAST_ORT_NATIVE_ADDON for the trainer).
addon=(); [ -s .carry/cuda/ort-native.node ] && addon=(--addon="$PWD/.carry/cuda/ort-native.node")
# The trainer runs as production does: TRAINER_CUDA_TF32=off (its default) computes the training
# graph and the rollouts without TF32 (NVIDIA_TF32_OVERRIDE=0 in its process, use_tf32=0 on
# ort-native); the bench's "cuda tf32:" line says so. TF32=on in this script's environment measures
# the other setting.
tf32=(--tf32="${TF32:-off}")
shape=("${1:-3}" "${2:-2}" "${3:-4}" "${4:-64}" "${5:-64}")
flags=(--steps="${shape[0]}" --prompts="${shape[1]}" --generations="${shape[2]}"
  --prompt-tokens="${shape[3]}" --max-tokens="${shape[4]}")
# The checkpoint and artifacts first (no timing), then the peer, then ours: the peer's figures
# must not depend on how long ours take.
# --ep=webgpu builds webgpu's (its rollouts' LoRA form, splitk-t; building needs no GPU).
node .carry/bench-train.mjs --work="$work" --build-only | tee "$OUT/build.txt"
node .carry/bench-train.mjs --work="$work" --build-only --ep=webgpu | tee -a "$OUT/build.txt"
for dtype in bfloat16 nf4; do
  python3 test/bench/gpu/hf-peft-train-peer.py "$work/qwen25-05b-random" "$dtype" "${shape[@]}" 2>&1 |
    grep -v Warning | tee "$OUT/hf-peft-$dtype.txt"
done
for ep in $( ((cuda_ep)) && echo cuda) webgpu; do
  LORACAST_SERVICE_BUNDLES=$PWD/.carry node .carry/bench-train.mjs --work="$work" --ep="$ep" "${flags[@]}" "${addon[@]}" "${tf32[@]}" 2>&1 |
    tee "$OUT/loracast-$ep.txt"
done
