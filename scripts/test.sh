#!/usr/bin/env bash
# One command: install the dependencies, check the formatting, build everything and run every
# test (the data-parallel ones on 2 MPI ranks); then build the
# scheduler and its tests with AddressSanitizer + UndefinedBehaviorSanitizer and run them too; then
# run the executor and budget tests (sessions with budgets and streams) under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Every C++ and CUDA source formatted as .clang-format says (scripts/format.sh rewrites them).
bash scripts/format.sh --check
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
# ThreadSanitizer over what runs steps on threads: the test cases of tests/framework and tests/budget
# in the doctest suite "executor" (ctest tests tsan/framework and tsan/budget), sessions that execute
# steps with budgets and streams. The planner sweeps and plan-only tests are left out: they start no
# threads, and instrumented they would take most of the CI's time. TSan cannot see libgomp's
# synchronisation, so this build has no OpenMP (LETHE_OPENMP=OFF: the kernels' pragmas are ignored,
# each op runs on its stream's thread) and links Debian's pthread OpenBLAS, which is not instrumented
# either: held to one thread, it starts none. No suppressions file is needed. Only the two test
# binaries are built.
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_TSAN=ON -DLETHE_OPENMP=OFF \
  -DLETHE_CUDA=OFF -DLETHE_BUILD_EXAMPLES=OFF -DLETHE_BUILD_BENCH=OFF
cmake --build build-tsan -j"$jobs" --target test_framework test_budget
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" OPENBLAS_NUM_THREADS=1 \
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" -R '^tsan/'
