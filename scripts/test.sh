#!/usr/bin/env bash
# The README's test command: installs dependencies, builds the Release preset and runs
# every test with ctest. Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j"$(nproc)"
ctest --preset release -j"$(nproc)" "$@"
