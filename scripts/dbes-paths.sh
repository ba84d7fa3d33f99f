#!/usr/bin/env bash
# The DBES expert-path experiment (issue 16, docs/finetune.md; DBES arXiv 2605.18498):
# pretrain SEEDS runs, measure each run's causal expert importance (moetb knockout), then
# fine-tune each run on every target domain with every arm (paths, least, experts, full,
# and DRAWS random draws of the path's size per layer), all with the same steps, batches
# and optimizer; summarise with 95% t intervals over seeds (scripts/dbes_summary.py).
# Resumable: finished pieces (eval.json, knockout JSON, finetune.json) are skipped.
#   scripts/dbes-paths.sh OUT [--seeds N] [--draws N] [--domains "d0 d1"] [--router R]
#       [--pretrain-steps S] [--finetune-steps S] [--tau T] [--lr LR] [--smoke] [--jobs J]
#       [--held-out dK]
# --held-out dK: pretraining never sees domain dK (its share is 0); the fine-tunes target dK
# from a second dataset of the same seed holding only dK (docs/finetune.md, held-out domains).
# --smoke: a tiny dataset and model, a few steps (proves the pipeline; numbers mean nothing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
moetb="${MOETB:-$root/build/release/cli/moetb}"
[ $# -ge 1 ] || { echo "usage: scripts/dbes-paths.sh OUT [options] (see the header)" >&2; exit 2; }
out="$1"; shift
seeds=3 draws=5 domains="d0" router=topk pretrain_steps=200 finetune_steps=100 tau=0.5 lr=1e-3 smoke=0 jobs=1 held_out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --draws) draws="$2"; shift 2 ;;
    --domains) domains="$2"; shift 2 ;;
    --router) router="$2"; shift 2 ;;
    --pretrain-steps) pretrain_steps="$2"; shift 2 ;;
    --finetune-steps) finetune_steps="$2"; shift 2 ;;
    --tau) tau="$2"; shift 2 ;;
    --lr) lr="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --held-out) held_out="$2"; shift 2 ;;
    *) echo "dbes-paths.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$moetb" ] || { echo "dbes-paths.sh: $moetb is missing (build first, or set MOETB)" >&2; exit 1; }
mkdir -p "$out"/{pretrain,knockout,finetune,logs}
start=$(date +%s)

train_args=()
if [ "$smoke" = 1 ]; then
  data_args=(--set domains=3 --set vocab_per_domain=16 --set motifs_per_domain=2 --set seq_len=32
             --set train_tokens=20000 --set val_tokens=4096 --set doc_len_mean=64)
  train_args=(--set model.d_model=32 --set model.n_heads=2 --set moe.n_experts=6 --set moe.d_ff=32
              --set train.micro_batch=8 --set train.warmup_steps=2 --set eval.sequences=64)
else
  data_args=()
fi
target_data=()  # finetune --data: empty = the pretraining dataset
if [ -n "$held_out" ]; then
  n_domains=4; [ "$smoke" = 1 ] && n_domains=3
  k="${held_out#d}"
  [[ "$k" =~ ^[0-9]+$ ]] && [ "$k" -lt "$n_domains" ] || { echo "dbes-paths.sh: --held-out '$held_out' is not one of d0..d$((n_domains - 1))" >&2; exit 2; }
  shares_pre="" shares_target=""
  for i in $(seq 0 $((n_domains - 1))); do
    if [ "$i" = "$k" ]; then shares_pre+="0,"; shares_target+="1,"; else shares_pre+="1,"; shares_target+="0,"; fi
  done
  [ -f "$out/data-$held_out/manifest.json" ] || "$moetb" datagen --out "$out/data-$held_out" "${data_args[@]}" \
    --set domains="$n_domains" --set shares="${shares_target%,}" > "$out/logs/datagen-$held_out.log"
  data_args+=(--set domains="$n_domains" --set shares="${shares_pre%,}")
  target_data=(--data "$out/data-$held_out")
  domains="$held_out"
fi
[ -f "$out/data/manifest.json" ] || "$moetb" datagen --out "$out/data" "${data_args[@]}" > "$out/logs/datagen.log"

for s in $(seq 1 "$seeds"); do
  run="$out/pretrain/seed-$s"
  if [ ! -f "$run/eval.json" ]; then
    "$moetb" train --data "$out/data" --out "$run" --router "$router" --seed "$s" --steps "$pretrain_steps" \
      --threads 1 --force -q --set eval.every="$pretrain_steps" "${train_args[@]}" > "$out/logs/train-$s.log" 2>&1 \
      || { echo "pretraining seed $s failed:"; tail -n 3 "$out/logs/train-$s.log"; exit 1; }
  fi
  [ -f "$out/knockout/seed-$s.json" ] || "$moetb" knockout "$run" -q -o "$out/knockout/seed-$s.json"
  echo "seed $s: pretrained and knocked out ($(( $(date +%s) - start )) s)"
done

# One fine-tune per line: seed domain arm draw; run J at a time.
jobs_file="$out/logs/finetune-jobs.txt"
: > "$jobs_file"
for s in $(seq 1 "$seeds"); do
  for d in $domains; do
    for arm in paths least experts full; do echo "$s $d $arm 0" >> "$jobs_file"; done
    for k in $(seq 1 "$draws"); do echo "$s $d random $k" >> "$jobs_file"; done
  done
done
finetune_one() {  # seed domain arm draw
  local name="$3"; [ "$3" = random ] && name="random-$4"
  local dir="$out/finetune/seed-$1/$2/$name"
  [ -f "$dir/finetune.json" ] && return 0
  mkdir -p "$(dirname "$dir")"
  # shellcheck disable=SC2086  # target_data_args is empty or "--data DIR" (no spaces in OUT)
  "$moetb" finetune "$out/pretrain/seed-$1" $target_data_args --domain "$2" --arm "$3" --draw "$4" --tau "$tau" --lr "$lr" \
    --steps "$finetune_steps" --out "$dir" --force -q > "$out/logs/ft-$1-$2-$name.log" 2>&1 \
    || { echo "fine-tune $* failed:"; tail -n 3 "$out/logs/ft-$1-$2-$name.log"; return 1; }
}
export -f finetune_one
target_data_args="${target_data[*]:-}"
export out moetb tau lr finetune_steps target_data_args
xargs -P "$jobs" -L 1 bash -c 'finetune_one "$@"' _ < "$jobs_file"
echo "fine-tunes done ($(( $(date +%s) - start )) s)"
python3 "$root/scripts/dbes_summary.py" "$out"
echo "done in $(( $(date +%s) - start )) s; $out/summary.md, $out/summary.json"
