#!/usr/bin/env bash
# Formats every C++ and CUDA source of the repository with clang-format (.clang-format), or with
# --check lists the files that are not formatted and fails (the test command runs the check).
#   scripts/format.sh           # rewrite in place
#   scripts/format.sh --check   # exit 1 naming each unformatted file
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format > /dev/null || { echo "format.sh: clang-format not found (apt-get install clang-format)" >&2; exit 2; }
# tests/compile_fail holds sources that must not compile; their text is what the tests check.
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v '^tests/compile_fail/')
if [[ "${1:-}" == "--check" ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run --Werror "$f" > /dev/null 2>&1; then
      echo "not formatted: $f (run scripts/format.sh)"
      bad=1
    fi
  done
  exit $bad
fi
clang-format -i "${files[@]}"
