#!/usr/bin/env bash
# Device call B of two (README.md, "CUDA on the GPU host"), right after cuda-stage.sh: node and
# onnxruntime-node 1.29.0 from /tmp/keep, the CUDA 13 provider from .carry/cuda-ep/ (cuda-ep.sh), the
# bundles from .carry/cuda/ (prepare.sh --cuda). Then,
# each part bounded so that the call ends within 9 minutes, logs in $OUT and a table at the end:
#  1. conformance (--ep cuda with TF32 off on the ort-native decoder, plus one fixture on the stock
#     binding; --ep webgpu) on both fixtures, fp32 and int4; on cuda (ort-native) also the
#     GroupQueryAttention decoder over a float16 KV cache (--attention gqa --kv-cache-dtype float16,
#     the form ORT's CUDA kernel takes; WebGPU's GQA runs are gqa.sh's), and the decoder built with
#     --lora-op shrink-expand (one ai.loracast LoraShrinkExpand node per LoRA branch, the addon's op);
#  2. the batching check on cuda (ort-native and the stock binding; ort-native with GQA over a
#     float16 cache, model-gqa16, and the same with fused LoRA nodes, model-gqa16-se) and webgpu
#     (ops and GQA);
#  3. the engine bench: HF + PEFT first, then ours on cuda (the ort-native rows, then the stock
#     binding's in a run of their own) and webgpu (base and LoRA, batch 1 and 8, the decode graph's
#     node count), each with --attention=both: GQA rows beside the ops rows, over a float16
#     cache on cuda and a float32 one on webgpu (the bench's --kv-cache-dtype=auto); the ort-native run
#     with --lora-op=both: LoRA rows ", shrink-expand" beside the gemm ones (the builds it adds are
#     qwen25-05b-int4-acc4-shrink-expand and qwen25-05b-int4-acc4-gqa16-shrink-expand in $work, the
#     second the shrink-expand model for the CUDA-graph probe);
#     --rounds=3 --swaps=0 unless flags given here say otherwise;
#  4. the fused LoRA op's check (test/bench/gpu/lora-op-check.ts);
#  5. the CUDA-graph probe (test/bench/gpu/cuda-graph-probe.ts) at batch 1 and 8, gemm and shrink-expand.
# The decoders find the addon (prepare-cuda.sh builds it into .carry/cuda/) through
# LORACAST_ORT_NATIVE_ADDON; every row names the binding that ran.
set -uo pipefail
start=$SECONDS
du -ch .carry/cuda-ep .carry/cuda .gl | tail -1
source test/bench/gpu/setup.sh
source test/bench/gpu/cuda-ep.sh
((cuda_ep)) || { echo "no CUDA provider: carry .carry/cuda-ep (prepare.sh --cuda)" >&2; exit 3; }
c=.carry/cuda
export LORACAST_ORT_NATIVE_ADDON=$PWD/$c/ort-native.node
# The engine bench's checkpoint and int4 artifacts are built on the CPU while parts 1 and 2 use the GPU:
# the GQA model over a float16 cache for cuda (and both with --lora-op shrink-expand), then over a
# float32 one for webgpu. The float32 pass builds webgpu's graphs, whose LoRA form is splitk-t (the
# bench's --lora-form=auto there).
for kv in "float16 gemm both" "float32 splitk-t gemm"; do
  read -r dtype form op <<<"$kv"
  node .carry/cuda/bench-engine.mjs --work="$work" --throughput=false --swaps=0 --compare=false --attention=both \
    --kv-cache-dtype="$dtype" --lora-form="$form" --lora-op="$op" || break
done > "$OUT/build.txt" 2>&1 &
build=$!
source test/bench/gpu/bounded.sh
table=()
part_end=270
# TF32 on (ORT's default) was measured in the first CUDA call (docs/benchmarks.md); "--tf32 on" reruns it.
for run in "cuda off ort-native" "cuda off onnxruntime-node" "webgpu on auto"; do
  read -r ep tf32 backend <<<"$run"
  for fixture in llama-tiny qwen2-tiny; do
    for quant in fp32 int4; do
      # The stock binding's CUDA conformance was recorded in session 14: one run here to compare.
      [ "$backend" = onnxruntime-node ] && [ "$fixture-$quant" != llama-tiny-fp32 ] && continue
      log="$OUT/conformance-$ep-$backend-tf32$tf32-$fixture-$quant.txt"
      # --tf32 is a cuda flag (conformance refuses it elsewhere).
      tf32flag=(); [ "$ep" = cuda ] && tf32flag=(--tf32 "$tf32")
      bounded 60 "$log" node "$c/conformance.mjs" "$c/fixtures/$fixture" --quant "$quant" --ep "$ep" "${tf32flag[@]}" \
        --backend "$backend"
      rc=$?
      if [ "$backend" = ort-native ]; then
        glog="$OUT/conformance-cuda-gqa16-$fixture-$quant.txt"
        bounded 60 "$glog" node "$c/conformance.mjs" "$c/fixtures/$fixture" --quant "$quant" --ep cuda --tf32 "$tf32" \
          --backend ort-native --attention gqa --kv-cache-dtype float16
        table+=("conformance cuda tf32 $tf32 gqa float16 $fixture $quant: exit $? $(tail -1 "$glog" | cut -c1-600)")
        slog="$OUT/conformance-cuda-shrink-expand-$fixture-$quant.txt"
        bounded 60 "$slog" node "$c/conformance.mjs" "$c/fixtures/$fixture" --quant "$quant" --ep cuda --tf32 "$tf32" \
          --backend ort-native --lora-op shrink-expand
        table+=("conformance cuda tf32 $tf32 shrink-expand $fixture $quant: exit $? $(tail -1 "$slog" | cut -c1-600)")
      fi
      table+=("conformance $ep$([ "$ep" = cuda ] && echo " tf32 $tf32") $fixture $quant: exit $rc $(tail -1 "$log" |
        node -e 'let r;try{r=JSON.parse(require("fs").readFileSync(0,"utf8"))}catch{r={}}
          const k=r.vsDequantizedFp32??r;console.log(`backend=${r.backend} pass=${r.pass} logitsLora=${k.logitsLoraMaxAbs} grad=${k.gradients?.maxRelError} tol=${r.tolerance}/${r.gradientTolerance}`)')")
    done
  done
done
part_end=370
for run in "cuda model ort-native" "cuda model onnxruntime-node" "cuda model-gqa16 ort-native" \
  "cuda model-gqa16-se ort-native" "webgpu model auto" "webgpu model-gqa auto" "webgpu model-splitk-t auto"; do
  read -r ep model backend <<<"$run"
  log="$OUT/batching-$ep-$model-$backend.txt"
  bounded 40 "$log" node "$c/batching-check.mjs" "$c/tiny" "$ep" "$model" "$backend"
  table+=("batching $ep $model $backend: exit $? $(tail -2 "$log" | tr '\n' ' ')")
done
part_end=500
left=$((part_end - (SECONDS - start)))
timeout $((left > 10 ? left : 10)) tail --pid=$build -f /dev/null || kill "$build" 2>/dev/null
wait "$build"; table+=("engine build: exit $? $(tail -1 "$OUT/build.txt")")
bounded 120 "$OUT/hf-peft.txt" python3 test/bench/gpu/hf-peft-peer.py "$work/qwen25-05b-random" bfloat16
table+=("HF+PEFT bf16 eager: exit $?" "$(grep -v Warning "$OUT/hf-peft.txt" | tail -8)")
part_end=545
# GroupQueryAttention over a float16 cache on cuda (ORT's CUDA kernel takes only float16/bfloat16),
# a float32 one on webgpu: the bench's --kv-cache-dtype=auto. On cuda the ort-native rows first (TF32
# off, the decoder's default), then the stock binding's, each a run of its own so that one failing
# cannot take the other's rows; NVIDIA_TF32_OVERRIDE=0 gives the stock rows TF32 off too. ORT's
# profiler runs only on the stock binding (its rows were recorded in session 14), so none here on cuda.
for run in "cuda ort-native both both" "cuda onnxruntime-node both gemm" "webgpu auto both gemm"; do
  read -r ep backend attention loraOp <<<"$run"
  log="$OUT/loracast-$ep-$backend.txt"
  profile=0; [ "$ep" = webgpu ] && profile=16
  NVIDIA_TF32_OVERRIDE=$([ "$ep" = cuda ] && echo 0) bounded 150 "$log" node --expose-gc "$c/bench-engine.mjs" \
    --work="$work" --ep="$ep" --compare=false --attention="$attention" --backend="$backend" --lora-op="$loraOp" --rounds=3 --swaps=0 \
    --profile=$profile "$@"
  table+=("loracast $ep $backend: exit $?" "$(grep -E '^\| int4|^decode step|^decoder binding|^shrink-expand decoder binding|^LoRA decode overhead|^base decode|^decoder loaded|placed on|^copy probe' "$log" |
    cut -c1-300)" "$(sed -n '/^ORT profile on/,/^$/p' "$log" | head -30)")
done
# 4. the fused LoRA op against the two Gemms it replaces, µs per branch (lora-op-check.ts; no model).
#    (Session 16's ort-native probe, ort-native-probe.ts, runs alone now: see the GPU README.)
part_end=560
bounded 70 "$OUT/lora-op-check.txt" node "$c/lora-op-check.mjs" --addon="$c/ort-native.node"
table+=("lora-op check: exit $?" "$(grep -E '^\||could not|lora-op check' "$OUT/lora-op-check.txt" | cut -c1-300)")
# 5. CUDA graphs on the GQA float16 decoder: the base graph, the gemm LoRA graph and the shrink-expand
#    one (cuda-graph-probe.ts --also), plain runs against replay.
part_end=595
for b in 1 8; do
  bounded 45 "$OUT/cuda-graph-probe-b$b.txt" node "$c/cuda-graph-probe.mjs" --model="$work/qwen25-05b-int4-acc4-gqa16" \
    --also="$work/qwen25-05b-int4-acc4-gqa16-shrink-expand" --addon="$c/ort-native.node" --steps=64 --batch=$b
  table+=("cuda-graph probe batch $b: exit $?" "$(grep -E '^\||overhead|could not|replay vs|against' "$OUT/cuda-graph-probe-b$b.txt" | cut -c1-300)")
done
printf '%s\n' "${table[@]}" | tee "$OUT/summary.txt"
# Only 8 files come back from a device call: the logs travel as one archive beside the summary.
(cd "$OUT" && tar czf logs.tgz --exclude=logs.tgz --exclude=summary.txt ./*.txt && find . -name '*.txt' ! -name summary.txt -delete)
echo "call B took $((SECONDS - start)) s"
