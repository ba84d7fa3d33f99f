#!/usr/bin/env bash
# Fuzz the trace reader with libFuzzer (clang, ASan + UBSan) for SECONDS (default 600).
# Usage: scripts/fuzz.sh [SECONDS]. The corpus lives in build/fuzz/corpus (seeded with
# small planted traces); crashes are written to build/fuzz/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
cmake --preset fuzz >/dev/null
cmake --build build/fuzz --target fuzz_trace_reader moetb
corpus=build/fuzz/corpus
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then  # seed: valid traces of each flavour the reader accepts
  sim=build/fuzz/cli/moetb
  $sim simulate -o "$corpus/plain.safetensors" -T 64 -L 2 -E 8 -k 2 -D 2 --seq-len 16 --force 2>/dev/null
  $sim simulate -o "$corpus/i32w.safetensors" -T 32 -L 1 -E 4 -k 2 -D 2 --seq-len 8 --expert-dtype I32 \
    --weights BF16 --probs F16 --unlabeled 0.3 --force 2>/dev/null
  $sim simulate -o "$corpus/f32.safetensors" -T 16 -L 3 -E 16 -k 1 -D 4 --seq-len 4 --weights F32 --force 2>/dev/null
fi
cd build/fuzz
./fuzz/fuzz_trace_reader -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus
