# Sourced by the GPU call scripts (cuda.sh, gqa.sh). bounded SECONDS LOG CMD...: runs CMD, output to
# LOG, for at most SECONDS and never past $part_end seconds after $start (each part's own end; the
# caller keeps the last one under the call's 600 s limit).
bounded() {
  local want=$1 log=$2; shift 2
  local left=$((part_end - (SECONDS - start)))
  if ((left < 10)); then echo "skipped, out of time: $*" | tee "$log"; return 124; fi
  timeout -k 5 $((want < left ? want : left)) "$@" > "$log" 2>&1
}
