#!/usr/bin/env bash
# Installs every Debian 12 package moetb needs (idempotent: does nothing when all are
# present). An optimised BLAS (OpenBLAS) is required: Debian's libtorch calls the
# generic BLAS interface and runs matrix products ~35x slower with the reference BLAS.
set -euo pipefail
packages=(
  build-essential cmake ninja-build git pkg-config time ccache
  libeigen3-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev catch2 libbenchmark-dev
  libtorch-dev libopenblas0-pthread libxsmm-dev   # libxsmm: JIT kernels for the fused paths' products
  clang libclang-rt-14-dev   # libFuzzer target and sanitizer runtimes
  slurmctld slurmd slurm-client munge   # the Slurm job-array test (scripts/slurm-local.sh)
  python3 python3-torch python3-numpy   # the Hugging Face exporter's tests (stand-in models)
  python3-dev pybind11-dev python3-pybind11   # the `import moetb` module (python/)
  chromium fonts-dejavu-core            # the reports' browser test (headless)
  zlib1g-dev libsentencepiece-dev       # datagen: gzip man pages, the subword tokenizer
  groff-base manpages manpages-dev      # datagen --preset languages: the formatter, English pages
  manpages-de manpages-fr manpages-es manpages-it manpages-pl manpages-ru manpages-ja
)
# Minimal images may drop man pages at install time (dpkg path-exclude): say so, since the
# languages preset then finds no pages.
check_man_pages() {
  if [ ! -d /usr/share/man/de/man1 ] && grep -rqs 'path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/; then
    echo "install-deps: warning: dpkg excludes /usr/share/man (see /etc/dpkg/dpkg.cfg.d/); remove that" \
         "path-exclude and reinstall the manpages packages for moetb datagen --preset languages" >&2
  fi
}
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  check_man_pages
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
check_man_pages
