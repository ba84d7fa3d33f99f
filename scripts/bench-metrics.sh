#!/usr/bin/env bash
# Reproduces docs/performance.md: `moetb metrics` on a Qwen3-30B-A3B-shaped planted trace
# (48 MoE layers, 128 experts, top-8, I16 experts, 1 M tokens, 768 MB of expert ids).
# Usage: scripts/bench-metrics.sh [TOKENS] [WORKDIR]   (defaults: 1048576, /tmp/moetb-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
tokens=${1:-1048576}
work=${2:-/tmp/moetb-bench}
cmake --preset release >/dev/null
cmake --build --preset release --target moetb bench_metrics
moetb=$PWD/build/release/cli/moetb
mkdir -p "$work"
trace=$work/qwen-shaped-$tokens.safetensors
if [ ! -f "$trace" ]; then
  /usr/bin/time -f "simulate: %e s wall, %M KB peak RSS" "$moetb" simulate -o "$trace" \
    -E 128 -k 8 -D 8 -L 48 --alpha 0.5 --load-profile zipf --zipf-s 1.0 --beta 0.2 --gamma 0.2 \
    --vocab-per-domain 16384 -T "$tokens" --seq-len 2048 --seed 1
fi
cat "$trace" > /dev/null   # warm the page cache: we measure the metrics, not the disk
for threads in 1 2; do
  /usr/bin/time -f "metrics --threads $threads: %e s wall, %U s user, %M KB peak RSS" \
    "$moetb" metrics "$trace" --threads "$threads" --json -o "$work/metrics-$threads.json"
done
echo "token-layers: $((tokens * 48)); throughput = token-layers / wall seconds"
build/release/bench/bench_metrics
