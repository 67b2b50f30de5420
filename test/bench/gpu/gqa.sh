#!/usr/bin/env bash
# One device call on the GPU host (README.md, "GroupQueryAttention on WebGPU"): the GroupQueryAttention
# decoder (build-model --attention gqa) on the WebGPU EP. Carries .carry/node.xz,
# .carry/ortnode.tar.xz, .carry/cuda (its bundles, tiny model and fixtures: prepare.sh --cuda) and
# .gl. Each part bounded so that the call ends within 9 minutes; logs in $OUT, a table at the end:
#  1. conformance --ep webgpu --attention gqa on both fixtures, fp32 and int4 (each report also
#     compares the GQA decoder with the ops decoder of the same weights: vsOpsAttention);
#  2. the batching check on webgpu, ops and GQA tiny models (joins, early leaves, GPU-to-host path);
#  3. the engine bench on webgpu with --attention=both: the GQA rows interleaved with the ops rows,
#     and each decode graph's node count. Flags given here go to the bench.
# The CUDA EP is not run here: ORT's CUDA GroupQueryAttention takes float16/bfloat16 only, so a float32
# GQA graph would run those nodes on the CPU (attention-gqa.ts); cuda.sh runs the float16 one
# (--kv-cache-dtype float16).
set -uo pipefail
start=$SECONDS
source test/bench/gpu/setup.sh
c=.carry/cuda
# webgpu's LoRA form (splitk-t, the bench's --lora-form=auto there), and gemm for --lora-form=splitk-t,gemm.
node "$c/bench-engine.mjs" --work="$work" --throughput=false --swaps=0 --compare=false --attention=both \
  --lora-form=splitk-t,gemm > "$OUT/build.txt" 2>&1 &
build=$!
source test/bench/gpu/bounded.sh
table=()
part_end=250
for fixture in llama-tiny qwen2-tiny; do
  for quant in fp32 int4; do
    log="$OUT/conformance-webgpu-gqa-$fixture-$quant.txt"
    bounded 60 "$log" node "$c/conformance.mjs" "$c/fixtures/$fixture" --quant "$quant" --ep webgpu --attention gqa
    rc=$?
    table+=("conformance webgpu gqa $fixture $quant: exit $rc $(tail -1 "$log" |
      node -e 'let r;try{r=JSON.parse(require("fs").readFileSync(0,"utf8"))}catch{r={}}
        const k=r.vsDequantizedFp32??r;console.log(`pass=${r.pass} logitsLora=${k.logitsLoraMaxAbs} vsOps=${JSON.stringify(r.vsOpsAttention)} tol=${r.tolerance}`)')")
  done
done
part_end=330
for model in model model-gqa model-splitk-t; do
  bounded 40 "$OUT/batching-webgpu-$model.txt" node "$c/batching-check.mjs" "$c/tiny" webgpu "$model"
  table+=("batching webgpu $model: exit $? $(tail -1 "$OUT/batching-webgpu-$model.txt")")
done
part_end=540
left=$((part_end - (SECONDS - start)))
timeout $((left > 10 ? left : 10)) tail --pid=$build -f /dev/null || kill "$build" 2>/dev/null
wait "$build"; table+=("engine build: exit $? $(tail -1 "$OUT/build.txt")")
bounded 200 "$OUT/loracast-webgpu-gqa.txt" node --expose-gc "$c/bench-engine.mjs" --work="$work" --ep=webgpu \
  --compare=false --attention=both --rounds=3 --swaps=0 "$@"
table+=("loracast webgpu, attention both: exit $?" "$(grep -E '^\| int4|nodes|overhead' "$OUT/loracast-webgpu-gqa.txt")")
printf '%s\n' "${table[@]}" | tee "$OUT/summary.txt"
echo "call took $((SECONDS - start)) s"
