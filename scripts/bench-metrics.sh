#!/usr/bin/env bash
# Reproduces docs/performance.md: `moetb metrics` on a Qwen3-30B-A3B-shaped planted trace
# (48 MoE layers, 128 experts, top-8, I16 experts, 1 M tokens, 768 MB of expert ids), and with
# --large the "Large traces" section: 2 M tokens with BF16 weights (3.2 GB), peak memory of
# metrics (threads 1 and 2, --json, table, --layers, --per-domain) and of compare, checked
# against the 2 GB budget. The large traces are deleted at the end.
# Usage: scripts/bench-metrics.sh [TOKENS] [WORKDIR]    (defaults: 1048576, /tmp/moetb-bench)
#        scripts/bench-metrics.sh --large [WORKDIR]     (default /tmp/large; needs ~5 GB free)
# MOETB_BIN=path/to/moetb uses that binary instead of building the release preset.
set -euo pipefail
cd "$(dirname "$0")/.."
large=0
if [ "${1:-}" = "--large" ]; then
  large=1
  shift
fi
if [ -n "${MOETB_BIN:-}" ]; then
  moetb=$MOETB_BIN
else
  cmake --preset release >/dev/null
  cmake --build --preset release --target moetb bench_metrics
  moetb=$PWD/build/release/cli/moetb
fi
shape=(-E 128 -k 8 -D 8 -L 48 --load-profile zipf --zipf-s 1.0 --beta 0.2 --gamma 0.2 --vocab-per-domain 16384
       --seq-len 2048 --seed 1)

if [ "$large" = 0 ]; then
  tokens=${1:-1048576}
  work=${2:-/tmp/moetb-bench}
  mkdir -p "$work"
  trace=$work/qwen-shaped-$tokens.safetensors
  if [ ! -f "$trace" ]; then
    /usr/bin/time -f "simulate: %e s wall, %M KB peak RSS" "$moetb" simulate -o "$trace" "${shape[@]}" \
      --alpha 0.5 -T "$tokens"
  fi
  cat "$trace" > /dev/null   # warm the page cache: we measure the metrics, not the disk
  for threads in 1 2; do
    /usr/bin/time -f "metrics --threads $threads: %e s wall, %U s user, %M KB peak RSS" \
      "$moetb" metrics "$trace" --threads "$threads" --json -o "$work/metrics-$threads.json"
  done
  echo "token-layers: $((tokens * 48)); throughput = token-layers / wall seconds"
  if [ -z "${MOETB_BIN:-}" ]; then build/release/bench/bench_metrics; fi
  exit 0
fi

# --large: two models' traces of the same 2 M tokens (same seed: same text), A with weights.
work=${1:-/tmp/large}
tokens=2097152
budget_kb=$((2 * 1024 * 1024))   # 2 GB peak resident memory, mapped pages included
mkdir -p "$work"
a=$work/large-a.safetensors
b=$work/large-b.safetensors
trap 'rm -f "$a" "$b" "$work"/large-*.json "$work"/large-*.txt "$work"/time.log' EXIT
/usr/bin/time -f "simulate A: %e s wall, %M KB peak RSS" "$moetb" simulate -o "$a" "${shape[@]}" --alpha 0.5 \
  -T "$tokens" --weights BF16 --force
/usr/bin/time -f "simulate B: %e s wall, %M KB peak RSS" "$moetb" simulate -o "$b" "${shape[@]}" --alpha 0.3 \
  -T "$tokens" --force
ls -l "$a" "$b"
cat "$a" "$b" > /dev/null   # warm the page cache
over=0
measure() {  # NAME COMMAND...: one line of wall, user CPU and peak RSS; remembers budget overruns
  local name=$1
  shift
  /usr/bin/time -f "%e %U %M" -o "$work/time.log" "$@" > /dev/null
  read -r wall user kb < "$work/time.log"
  printf '%-34s %8s s wall %8s s user %8s MB peak RSS\n' "$name" "$wall" "$user" "$((kb / 1024))"
  if [ "$kb" -gt "$budget_kb" ]; then over=1; fi
}
measure "metrics --threads 1 --json" "$moetb" metrics "$a" --threads 1 --json -o "$work/large-1.json"
measure "metrics --threads 2 --json" "$moetb" metrics "$a" --threads 2 --json -o "$work/large-2.json"
cmp "$work/large-1.json" "$work/large-2.json" && echo "  (threads 1 and 2: byte-identical JSON)"
measure "metrics --threads 2 (table)" "$moetb" metrics "$a" --threads 2 -o "$work/large-table.txt"
measure "metrics --threads 2 --layers 0-3,10" "$moetb" metrics "$a" --threads 2 --layers 0-3,10 --json \
  -o "$work/large-layers.json"
measure "metrics --threads 2 --per-domain" "$moetb" metrics "$a" --threads 2 --per-domain --json \
  -o "$work/large-pd.json"
measure "compare A B --threads 2 --json" "$moetb" compare "$a" "$b" --threads 2 --json -o "$work/large-cmp.json"
if [ "$over" = 1 ]; then
  echo "FAIL: a run exceeded 2 GB peak resident memory" >&2
  exit 1
fi
echo "all runs within 2 GB peak resident memory"
