#!/usr/bin/env bash
# Runs on the GPU host (device call): the Python trainer of issue "external trainers". PyTorch + PEFT
# (bf16, LoRA r=16 on all seven projections of the Qwen2.5-0.5B-shaped checkpoint) publishes every
# step through the Python client to a trainer service, and two generators on the same GPU (WebGPU EP)
# serve the next rollouts (python-fleet.ts); then the same loop with PEFT generating for itself.
# Results go to $OUT. Prepare with test/bench/gpu/prepare.sh.
# usage: python.sh [steps prompts generations prompt-tokens max-tokens]
set -uo pipefail
source test/bench/gpu/setup.sh
shape=("${1:-8}" "${2:-2}" "${3:-4}" "${4:-64}" "${5:-32}")
flags=(--steps="${shape[0]}" --prompts="${shape[1]}" --generations="${shape[2]}"
  --prompt-tokens="${shape[3]}" --max-tokens="${shape[4]}")
node .carry/bench-train.mjs --work="$work" --build-only | tee "$OUT/build.txt"
export PYTHONUNBUFFERED=1
LORACAST_SERVICE_BUNDLES=$PWD/.carry node .carry/python-fleet.mjs --work="$work" --out="$OUT" "${flags[@]}" 2>&1 |
  grep -v Warning | tee "$OUT/python-fleet.txt"
python3 shared/python/examples/grpo_peft.py --checkpoint="$work/qwen25-05b-random" --rollouts=self "${flags[@]}" 2>&1 |
  grep -v Warning | tee "$OUT/python-self.txt"
