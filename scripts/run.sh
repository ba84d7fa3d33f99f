#!/usr/bin/env bash
# The README's main job (until training lands): installs dependencies, builds moetb,
# writes a planted routing trace, prints its metrics table, and runs `moetb validate`.
# Results go to out/planted/ with the effective command, seed and git revision.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target moetb
moetb=build/release/cli/moetb
out=out/planted
mkdir -p "$out"
# The embedded default: 8 domains on 64 experts (top-4), 6 layers whose specialization
# rises with depth, skewed (Zipf) load, some stiffness and span coherence.
sim_args=(--experts 64 --top-k 4 --domains 8 --layers 6 --alpha 0,0.2,0.4,0.6,0.8,1.0
          --load-profile zipf --zipf-s 1.0 --beta 0.3 --gamma 0.3 --unlabeled 0.05
          --tokens 262144 --seq-len 256 --seed 1)
"$moetb" simulate -o "$out/trace.safetensors" --force "${sim_args[@]}"
{
  echo "command: moetb simulate ${sim_args[*]}"
  echo "seed: 1"
  echo "git_revision: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "moetb: $("$moetb" --version)"
} > "$out/provenance.txt"
"$moetb" metrics "$out/trace.safetensors" --json -o "$out/metrics.json"
"$moetb" metrics "$out/trace.safetensors" | tee "$out/metrics.txt"
echo
"$moetb" validate | tee "$out/validate.txt"
echo
echo "results in $out/: trace.safetensors, metrics.json, metrics.txt, validate.txt, provenance.txt"
