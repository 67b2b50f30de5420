#!/usr/bin/env bash
# Device call B for ai.loracast.MatMulNBitsLora (issue 18, session 19), right after cuda-stage.sh;
# carries .carry/cuda-ep, .carry/cuda and .gl as cuda.sh does. Parts, most wanted first, each bounded
# so that what ran comes back when the session's device time runs out; summary.txt grows after each
# part, and the logs stay at most 8 files in $OUT (all that come back):
#  1. the op check (nbits-op-check.ts): its CUDA kernels against float64 and its CPU kernel, then µs
#     per projection at M = 1, 8 and 128 (prefill: the dequantize + cuBLAS form) against MatMulNBits
#     alone and MatMulNBits + LoraShrinkExpand, plain and replay;
#  2. checks.txt: conformance on cuda (ort-native, TF32 off) of int4 shrink-expand decoders, whose
#     LoRA projections are MatMulNBitsLora (qwen2-tiny with GQA over a float16 cache, the production
#     form, its qkv with a bias; llama-tiny with the ops attention), then the batching check on
#     llama-tiny int4 GQA float16 shrink-expand (model-gqa16-se-int4);
#  3. engine.txt: the engine bench (built in the background from the start): GQA float16, the base
#     graph against the shrink-expand LoRA graph, batch 1 and 8, with the LoRA overhead line;
#  4. hf-peft.txt: the peer, HF transformers + PEFT bf16 eager, on the same random checkpoint;
#  5. the engine bench again (appended to engine.txt): the overhead's spread between runs;
#  6. probe.txt: the CUDA-graph probe at batch 1 and 8 (the base graph against the LoRA graph of
#     the shrink-expand build), plain and replay.
set -uo pipefail
start=$SECONDS
source test/bench/gpu/setup.sh
source test/bench/gpu/cuda-ep.sh
((cuda_ep)) || { echo "no CUDA provider: carry .carry/cuda-ep (prepare.sh --cuda)" >&2; exit 3; }
c=.carry/cuda
export LORACAST_ORT_NATIVE_ADDON=$PWD/$c/ort-native.node
source test/bench/gpu/bounded.sh
note() { printf '%s\n' "$@" | tee -a "$OUT/summary.txt"; }
engine=(--work="$work" --swaps=0 --compare=false --attention=gqa --kv-cache-dtype=float16 --lora-op=shrink-expand)
node "$c/bench-engine.mjs" "${engine[@]}" --throughput=false > /tmp/build.txt 2>&1 &
build=$!

part_end=110
bounded 100 "$OUT/nbits-op-check.txt" node "$c/nbits-op-check.mjs" --addon="$c/ort-native.node" --nodes=8 --runs=20 \
  --ms=1,8,128
note "nbits-op check: exit $? at $((SECONDS - start)) s" "$(grep -E '^\||could not|nbits-op check' "$OUT/nbits-op-check.txt" | cut -c1-400)"

part_end=160
for run in "qwen2-tiny --attention gqa --kv-cache-dtype float16" "llama-tiny"; do
  read -r fixture rest <<<"$run"
  # shellcheck disable=SC2086 # $rest is the run's extra flags
  bounded 30 /tmp/part.txt node "$c/conformance.mjs" "$c/fixtures/$fixture" --quant int4 --ep cuda \
    --tf32 off --backend ort-native --lora-op shrink-expand $rest
  rc=$?; cat /tmp/part.txt >> "$OUT/checks.txt"
  note "conformance cuda int4 shrink-expand $run: exit $rc $(tail -1 /tmp/part.txt | cut -c1-500)"
done
part_end=185
bounded 25 /tmp/part.txt node "$c/batching-check.mjs" "$c/tiny" cuda model-gqa16-se-int4 ort-native
rc=$?; cat /tmp/part.txt >> "$OUT/checks.txt"
note "batching cuda model-gqa16-se-int4 ort-native: exit $rc $(tail -2 /tmp/part.txt | tr '\n' ' ')"

part_end=200
left=$((part_end - (SECONDS - start)))
timeout $((left > 5 ? left : 5)) tail --pid=$build -f /dev/null || kill "$build" 2>/dev/null
wait "$build"; note "engine build: exit $? at $((SECONDS - start)) s $(tail -1 /tmp/build.txt)"
run_engine() {
  NVIDIA_TF32_OVERRIDE=0 bounded 45 /tmp/part.txt node --expose-gc "$c/bench-engine.mjs" "${engine[@]}" --ep=cuda \
    --backend=ort-native --rounds=5
  local rc=$?; cat /tmp/part.txt >> "$OUT/engine.txt"
  note "engine run $1: exit $rc at $((SECONDS - start)) s" \
    "$(grep -E '^\| int4|^decoder binding|^LoRA decode overhead|^base decode' /tmp/part.txt | cut -c1-300)"
}
part_end=250
run_engine 1
part_end=345
bounded 95 "$OUT/hf-peft.txt" python3 test/bench/gpu/hf-peft-peer.py "$work/qwen25-05b-random" bfloat16
note "HF+PEFT bf16 eager: exit $? at $((SECONDS - start)) s" "$(grep -v Warning "$OUT/hf-peft.txt" | tail -8)"
part_end=390
run_engine 2
part_end=430
for b in 1 8; do
  bounded 20 /tmp/part.txt node "$c/cuda-graph-probe.mjs" --model="$work/qwen25-05b-int4-acc4-gqa16-shrink-expand" \
    --addon="$c/ort-native.node" --steps=32 --batch=$b
  rc=$?; cat /tmp/part.txt >> "$OUT/probe.txt"
  note "cuda-graph probe batch $b: exit $rc" "$(grep -E '^\||overhead|could not|replay vs|against' /tmp/part.txt | cut -c1-300)"
done
note "call took $((SECONDS - start)) s"
