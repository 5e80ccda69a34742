#!/usr/bin/env bash
# One command: install the dependencies, build everything and run every test; then build the
# scheduler and its tests with AddressSanitizer + UndefinedBehaviorSanitizer and run them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs="$(nproc)"
# ctest runs tests side by side: sleeping (not spinning) OpenMP workers keep two processes from
# starving each other on a small machine.
export OMP_WAIT_POLICY=PASSIVE
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_SANITIZE=ON \
  -DLETHE_SCHEDULER_ONLY=ON
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
