#!/usr/bin/env bash
# Causal expert importance beside routing statistics for several routers (issue 16, the
# knockout question of docs/finetune.md; arXiv 2605.18498 uses routing statistics, arXiv
# 2606.10703 asks whether they predict causal importance): pretrains SEEDS runs per router
# on the dataset of a scripts/dbes-paths.sh folder and writes `moetb knockout` for each, as
# OUT/knockout-routers/NAME/seed-S.json; scripts/dbes_summary.py OUT summarises them.
# Resumable: finished knockouts are skipped.
#   scripts/knockout-routers.sh OUT [--seeds N] [--routers "oracle topk-eb ..."] [--steps S]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
moetb="${MOETB:-$root/build/release/cli/moetb}"
[ $# -ge 1 ] || { echo "usage: scripts/knockout-routers.sh OUT [options] (see the header)" >&2; exit 2; }
out="$1"; shift
seeds=3 steps=200 routers="oracle topk-none topk-eb expert_choice sinkhorn"
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --routers) routers="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    *) echo "knockout-routers.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$moetb" ] || { echo "knockout-routers.sh: $moetb is missing (build first, or set MOETB)" >&2; exit 1; }
[ -f "$out/data/manifest.json" ] || { echo "knockout-routers.sh: $out/data is not a dataset (run scripts/dbes-paths.sh $out first)" >&2; exit 1; }

router_args() {  # NAME -> moetb train arguments (the topk run of dbes-paths.sh is the Switch loss)
  case "$1" in
    oracle) echo "--router oracle" ;;                       # the known ground truth: the positive control
    topk-none) echo "--router topk --set router.balance_coef=0" ;;  # no balancing at all
    topk-eb) echo "--router topk --set router.balance_coef=0 --set router.bias_update_rate=0.001" ;;  # aux-loss-free bias
    expert_choice) echo "--router expert_choice" ;;
    sinkhorn) echo "--router sinkhorn" ;;
    balanced) echo "--router balanced" ;;
    *) echo "knockout-routers.sh: unknown router configuration '$1' (known: oracle topk-none topk-eb expert_choice sinkhorn balanced)" >&2; return 1 ;;
  esac
}

start=$(date +%s)
for name in $routers; do
  args="$(router_args "$name")"
  mkdir -p "$out/knockout-routers/$name" "$out/pretrain-routers/$name" "$out/logs"
  for s in $(seq 1 "$seeds"); do
    run="$out/pretrain-routers/$name/seed-$s" ko="$out/knockout-routers/$name/seed-$s.json"
    [ -f "$ko" ] && continue
    if [ ! -f "$run/eval.json" ]; then
      # shellcheck disable=SC2086  # args is a list of words by construction
      "$moetb" train --data "$out/data" --out "$run" $args --seed "$s" --steps "$steps" --threads 1 --force -q \
        --set eval.every="$steps" > "$out/logs/train-$name-$s.log" 2>&1 \
        || { echo "pretraining $name seed $s failed:"; tail -n 3 "$out/logs/train-$name-$s.log"; exit 1; }
    fi
    "$moetb" knockout "$run" -q -o "$ko"
    echo "$name seed $s: pretrained and knocked out ($(( $(date +%s) - start )) s)"
  done
done
