#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) on the C++ files changed since BASE (default: HEAD~1), with the
# compile commands of build/ (configured with CMAKE_EXPORT_COMPILE_COMMANDS=ON by this script).
#   scripts/tidy.sh            # files changed by the last commit
#   scripts/tidy.sh origin/main
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-HEAD~1}"
command -v clang-tidy > /dev/null || { echo "tidy.sh: clang-tidy not found (apt-get install clang-tidy)" >&2; exit 2; }
cmake -S . -B build -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > /dev/null
mapfile -t files < <(git diff --name-only --diff-filter=AM "$base" -- '*.cpp' | grep -v '^tests/compile_fail/' || true)
if ((${#files[@]} == 0)); then
  echo "tidy.sh: no C++ source changed since $base"
  exit 0
fi
clang-tidy -p build --quiet "${files[@]}"
