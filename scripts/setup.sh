#!/usr/bin/env bash
# One command: install the dependencies, build Lethe (Release, -O3) and run the main example.
# Without arguments the example shows what Lethe is for: the Fashion-MNIST MLP trained under a memory
# budget smaller than its step needs (it recomputes), then the same training with unlimited memory in
# the same process, and a report: accuracy, budget vs measured peak vs no-remat peak, measured
# overhead, and whether the losses were bitwise equal. With arguments, they go to the example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
if [ "$#" -eq 0 ]; then
  set -- --epochs 2 --batch 512 --lr 4e-3 --memory-budget 0.85 --compare
fi
exec ./build/examples/mlp_fashion/mlp_fashion "$@"
