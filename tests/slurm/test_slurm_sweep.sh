#!/bin/bash
# The Slurm path of `moetb sweep` on a real single-node cluster (scripts/slurm-local.sh):
# plan a small sweep, submit it as a job array and wait, collect; then a lost result is
# resubmitted alone, and a complete sweep submits nothing. Real `moetb train` runs when the
# LibTorch part is built, else the stand-in trainer. Usage: test_slurm_sweep.sh MOETB SOURCE_DIR
set -euo pipefail
moetb=$1 src=$2
if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null; then
  [ "${MOETB_REQUIRE_SLURM:-0}" = 1 ] && { echo "error: Slurm is not installed (scripts/install-deps.sh)"; exit 1; }
  echo "skipped: Slurm is not installed"; exit 77
fi
state=$(mktemp -d /tmp/moetb-slurm-test.XXXXXX)
work=$(mktemp -d /tmp/moetb-slurm-sweep.XXXXXX)
chmod 755 "$work"
cleanup() { "$src/scripts/slurm-local.sh" stop "$state" >/dev/null 2>&1 || true; rm -rf "$state" "$work"; }
trap cleanup EXIT
fail() { echo "FAILED: $*"; exit 1; }

"$src/scripts/slurm-local.sh" start "$state"
eval "$("$src/scripts/slurm-local.sh" env "$state")"

trainer=() unchecked=""
tiny="train.steps = 2
train.micro_batch = 4
model.d_model = 16
model.n_heads = 2
moe.n_experts = 4
moe.d_ff = 16
eval.every = 2
eval.sequences = 4"
if [ ! -x "$(dirname "$moetb")/moetb-torch" ]; then
  trainer=(--moetb "$src/tests/core/fixtures/fake_moetb_train.sh")
  tiny="fake.loss = 2.0"
  unchecked="check_train_keys = false"  # [fake] keys are not moetb train's: plan must not check them
fi
cat > "$work/spec.toml" <<SPEC
[sweep]
name = "slurm-test"
seeds = [1, 2]
$unchecked
[datagen]
domains = 2
vocab_per_domain = 16
seq_len = 16
train_tokens = 2048
val_tokens = 256
doc_len_mean = 40
[base]
$tiny
[[axes]]
router.name = ["oracle", "random"]
SPEC
cd "$work"
"$moetb" sweep plan spec.toml --out sw
"$moetb" sweep slurm sw --partition debug --time 00:05:00 --cpus-per-task 1 --mem 100M --max-parallel 2 \
  --submit --wait "${trainer[@]}" || fail "the job array did not succeed"
grep -q '^#SBATCH --array=0-3%2$' sw/slurm/sweep.sbatch || fail "array line: $(grep array sw/slurm/sweep.sbatch)"
ls sw/slurm/logs/*.out >/dev/null || fail "no Slurm task logs"
"$moetb" sweep collect sw
[ "$(grep -c ',ok,0,' sw/results.csv)" = 4 ] || fail "expected 4 complete runs: $(cat sw/results.csv)"

# A result that went missing is the only run resubmitted; the others are not touched.
first=$(sed -n 2p sw/results.csv | cut -d, -f2)
before=$(stat -c %Y sw/runs/*/result.json | sort | tr '\n' ' ')
rm "sw/runs/$first/result.json"
"$moetb" sweep slurm sw -p debug -t 00:05:00 --mem 100M --submit --wait "${trainer[@]}" || fail "resubmission failed"
grep -q '^#SBATCH --array=0$' sw/slurm/sweep.sbatch || fail "resubmitted array: $(grep array sw/slurm/sweep.sbatch)"
[ -f "sw/runs/$first/result.json" ] || fail "the resubmitted run wrote no result"
"$moetb" sweep collect sw
[ "$(grep -c ',ok,0,' sw/results.csv)" = 4 ] || fail "expected 4 complete runs after the resubmission"
out=$("$moetb" sweep slurm sw --submit "${trainer[@]}")
echo "$out" | grep -q "nothing to submit" || fail "a complete sweep submitted: $out"
echo "slurm sweep test passed ($before)"
