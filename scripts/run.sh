#!/usr/bin/env bash
# The README's main job, the end-to-end demo: installs dependencies, builds moetb,
# generates the default multi-domain dataset, trains the default small MoE model three
# times (learned top-k routing, the domain oracle, random routing; two runs at a time on
# one core each), and prints their validation loss and routing metrics side by side.
# Everything lands in out/demo/ with the effective configs, seeds and git revision.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target moetb
moetb=build/release/cli/moetb
out=out/demo
mkdir -p "$out"
start=$(date +%s)
"$moetb" datagen --out "$out/data" --force
train() {  # router name; one intra-op thread per run (faster than two here, docs/performance.md)
  "$moetb" train --data "$out/data" --out "$out/$1" --router "$1" --threads 1 --force > "$out/$1.log" 2>&1 \
    || { echo "training with router $1 failed:"; tail -n 3 "$out/$1.log"; return 1; }
  echo "trained $1: $(tail -n 1 "$out/$1.log")"
}
train topk & p1=$!
train oracle & p2=$!
wait $p1 && wait $p2
train random
{
  echo "moetb: $("$moetb" --version)"
  echo "git_revision: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "data: moetb datagen (defaults, seed 1); runs: moetb train --router R --threads 1 (defaults, seed 1)"
} > "$out/provenance.txt"
echo
"$moetb" runs "$out/topk" "$out/oracle" "$out/random" | tee "$out/summary.txt"
"$moetb" runs "$out/topk" "$out/oracle" "$out/random" --json -o "$out/summary.json" --force
echo
echo "done in $(( $(date +%s) - start )) s after the build; results in $out/ (data/, topk/, oracle/, random/, summary.txt)"
