#!/usr/bin/env bash
# Reproduces the training section of docs/performance.md in one command: builds moetb and
# bench_train, prints `moetb env --check` (CPU, BLAS kernel, a product against a double
# reference), then runs moetb's training step and the Python PyTorch eager peer
# (bench/peer_train.py, Debian's /usr/bin/python3 with python3-torch) side by side with
# the same BLAS kernel at the default and the larger shape, plus single-core sgemm, and
# prints tokens/s, the ratio and the share of sgemm FLOP/s; then peak memory per shape.
# Usage: scripts/bench-train.sh [ARGS for bench/train_side_by_side.py, e.g. --rounds 5 --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target moetb bench_train >/dev/null
build/release/cli/moetb env --check
echo
python3 bench/train_side_by_side.py "$@"
echo
for shape in 0 1; do  # peak resident memory of the benchmark process per shape (model, optimizer, activations)
  /usr/bin/time -f "shape $shape: peak RSS %M KB" build/release/bench/bench_train \
    --benchmark_filter="BM_TrainStep/$shape/" --benchmark_min_time=1 >/dev/null
done
