#!/usr/bin/env bash
# Installs every Debian 12 package moetb needs (idempotent: does nothing when all are
# present). An optimised BLAS (OpenBLAS) is required: Debian's libtorch calls the
# generic BLAS interface and runs matrix products ~35x slower with the reference BLAS.
set -euo pipefail
packages=(
  build-essential cmake ninja-build git pkg-config time ccache
  libeigen3-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev catch2 libbenchmark-dev
  libtorch-dev libopenblas0-pthread
  clang libclang-rt-14-dev   # libFuzzer target and sanitizer runtimes
  slurmctld slurmd slurm-client munge   # the Slurm job-array test (scripts/slurm-local.sh)
  python3 python3-torch python3-numpy   # the Hugging Face exporter's tests (stand-in models)
  python3-dev pybind11-dev python3-pybind11   # the `import moetb` module (python/)
  chromium fonts-dejavu-core            # the reports' browser test (headless)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
